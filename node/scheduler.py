"""Periodic jobs (apscheduler) of the scheduler role."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from node.bus import OutboxRelay
from node.resources import Resources

log = structlog.get_logger(__name__)


def build_scheduler(resources: Resources) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    relay = OutboxRelay(resources.db, resources.js, resources.settings)
    scheduler.add_job(relay.purge_published, "interval", hours=1, id="outbox.purge",
                      coalesce=True, max_instances=1)
    from node.webhooks.tasks import purge_old_deliveries

    scheduler.add_job(purge_old_deliveries, "interval", hours=6, id="webhooks.purge", coalesce=True,
                      max_instances=1, args=[resources.db, resources.settings.webhook_retention_days])
    _payment_jobs(scheduler, resources)
    _settlement_jobs(scheduler, resources)
    return scheduler


def _settlement_jobs(scheduler: AsyncIOScheduler, resources: Resources) -> None:
    """The chain sender (withdrawals, refunds, settlements, payout addresses, treasury withdrawals) runs
    here, in the same process and event loop as the payments jobs: transactions from the operator key then share
    one nonce counter. Scheduled settlement batches are created here too."""
    from node.settlement.tasks import ChainSender, create_scheduled_settlements

    sender = ChainSender(resources.settings, resources.db)
    every = {"coalesce": True, "max_instances": 1}
    scheduler.add_job(sender.run_once, "interval", seconds=resources.settings.tx_sender_interval_s,
                      id="settlement.chain_sender", **every)
    test_chain = resources.settings.test_chain()
    if test_chain is not None:  # refunds of test-mode payments go out on their own chain
        test_sender = ChainSender(test_chain, resources.db)
        scheduler.add_job(test_sender.run_once, "interval", seconds=resources.settings.tx_sender_interval_s,
                          id="settlement.chain_sender.test_chain", **every)
    scheduler.add_job(create_scheduled_settlements, "interval",
                      seconds=resources.settings.settlement_schedule_interval_s, id="settlement.schedules",
                      args=[resources.db, resources.settings], **every)


def _payment_jobs(scheduler: AsyncIOScheduler, resources: Resources) -> None:
    """Rates every 5 min (and at start), oracle posts, payment and link expiry, deposit sweeps (refunds are
    sent by the chain sender, exactly once, with withdrawals)."""
    from datetime import UTC, datetime

    from node.exchange.coingecko import CoinGecko
    from node.exchange.oracle_poster import post_if_due
    from node.exchange.rate_tasks import refresh_rates
    from node.payments import tasks
    from node.payments.onchain import ChainNotConfigured, operator

    settings, db = resources.settings, resources.db
    key = settings.coingecko_api_key.get_secret_value() if settings.coingecko_api_key else None
    source = CoinGecko(resources.http, settings.coingecko_url, api_key=key, timeout=settings.rates_timeout_s)
    every = {"coalesce": True, "max_instances": 1}
    scheduler.add_job(refresh_rates, "interval", seconds=settings.rates_interval_s, id="exchange.rates",
                      next_run_time=datetime.now(UTC), args=[db, settings, source], **every)
    scheduler.add_job(tasks.expire_payments, "interval", seconds=settings.expiry_interval_s, id="payments.expiry",
                      args=[db, settings], **every)
    scheduler.add_job(tasks.expire_links, "interval", minutes=1, id="payments.links_expiry", args=[db], **every)
    try:
        op = operator(settings)
    except ChainNotConfigured:
        log.warning("no contracts deployment: sweeps and oracle posts are off")
        return
    scheduler.add_job(tasks.sweep_deposits, "interval", seconds=settings.sweep_interval_s, id="payments.sweep",
                      args=[db, settings, op], **every)
    reporter = operator(settings, key=settings.oracle_reporter_key.get_secret_value()) \
        if settings.oracle_reporter_key else op
    scheduler.add_job(post_if_due, "interval", seconds=settings.rates_interval_s, id="exchange.oracle",
                      args=[db, settings, reporter], **every)
    test_chain = settings.test_chain()
    if test_chain is not None:  # deposits of test-mode payments are swept on their own chain
        try:
            test_op = operator(test_chain)
        except ChainNotConfigured:
            log.warning("no contracts deployment on the test chain: its sweeps are off", chain_id=test_chain.chain_id)
            return
        scheduler.add_job(tasks.sweep_deposits, "interval", seconds=settings.sweep_interval_s,
                          id="payments.sweep.test_chain", args=[db, test_chain, test_op], **every)


def scheduler_tasks(resources: Resources, stop: asyncio.Event) -> list[Awaitable[None]]:
    async def run() -> None:
        scheduler = build_scheduler(resources)
        scheduler.start()
        try:
            await stop.wait()
        finally:
            scheduler.shutdown(wait=False)

    return [run()]
