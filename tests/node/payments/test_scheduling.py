"""The scheduler role registers the payments jobs (rates, expiry, link expiry, sweeps, oracle posts)
at their configured intervals, each calling the real task with this node's database and settings."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from apscheduler.triggers.interval import IntervalTrigger
from eth_account import Account

from node.exchange.oracle_poster import post_if_due
from node.exchange.rate_tasks import refresh_rates
from node.payments import onchain, tasks
from node.scheduler import build_scheduler
from tests.fixtures.payments import PaymentNode


class TestSchedulerJobs:
    async def test_payments_jobs_are_registered_at_their_intervals(self, pay_node: PaymentNode) -> None:
        settings = pay_node.settings.model_copy(update={
            "rates_interval_s": 300.0, "expiry_interval_s": 15.0, "sweep_interval_s": 30.0})
        resources = dataclasses.replace(pay_node.resources, settings=settings)
        scheduler = build_scheduler(resources)  # built, not started: nothing runs
        jobs = {job.id: job for job in scheduler.get_jobs()}
        expected = {
            "exchange.rates": (refresh_rates, timedelta(minutes=5)),
            "payments.expiry": (tasks.expire_payments, timedelta(seconds=15)),
            "payments.links_expiry": (tasks.expire_links, timedelta(minutes=1)),
            "payments.sweep": (tasks.sweep_deposits, timedelta(seconds=30)),
            "exchange.oracle": (post_if_due, timedelta(minutes=5)),
        }
        for job_id, (func, every) in expected.items():
            assert job_id in jobs, job_id
            job = jobs[job_id]
            assert job.func is func, job_id
            assert isinstance(job.trigger, IntervalTrigger) and job.trigger.interval == every, job_id
            assert job.coalesce and job.max_instances == 1, job_id
        assert jobs["payments.expiry"].args == (resources.db, settings)
        assert jobs["payments.links_expiry"].args == (resources.db,)
        sweep_db, sweep_settings, operator = jobs["payments.sweep"].args
        assert sweep_db is resources.db and sweep_settings is settings
        # the operator key's sender, on this node's chain
        assert operator.sender.address == Account.from_key(settings.operator_key.get_secret_value()).address
        assert operator.sender.chain_id == onchain.deployment(settings).chain_id
