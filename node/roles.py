"""The node's roles, each a process: api, worker, scheduler (indexer: `indexer/`)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import prometheus_client
import structlog
import uvicorn

from node.bus import OutboxRelay
from node.config import Settings
from node.logs import configure_logging
from node.resources import Resources

log = structlog.get_logger(__name__)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _serve_until_stopped(name: str, settings: Settings,
                               tasks: Callable[[Resources, asyncio.Event], list[Awaitable[None]]]) -> None:
    stop = asyncio.Event()
    _stop_on_signals(stop)
    if settings.metrics_port:
        prometheus_client.start_http_server(settings.metrics_port, addr=settings.api_host)
    resources = await Resources.open(settings, name=name)
    log.info("role started", role=name)
    try:
        running = [asyncio.ensure_future(t) for t in tasks(resources, stop)]
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([*running, stopper], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        await asyncio.gather(*running, return_exceptions=True)
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        await resources.close()
        log.info("role stopped", role=name)


def worker_tasks(resources: Resources, stop: asyncio.Event) -> list[Awaitable[None]]:
    from node.workers import consumers

    relay = OutboxRelay(resources.db, resources.js, resources.settings)
    return [relay.run(stop), *(c.run(stop) for c in consumers(resources))]


def run_worker(settings: Settings) -> None:
    configure_logging(settings, role="worker")
    asyncio.run(_serve_until_stopped("worker", settings, worker_tasks))


def run_relay(settings: Settings) -> None:
    """Only the outbox relay (the worker runs it too); for scaling it on its own."""
    configure_logging(settings, role="relay")
    asyncio.run(_serve_until_stopped(
        "relay", settings, lambda r, stop: [OutboxRelay(r.db, r.js, r.settings).run(stop)]
    ))


def run_scheduler(settings: Settings) -> None:
    from node.scheduler import scheduler_tasks

    configure_logging(settings, role="scheduler")
    asyncio.run(_serve_until_stopped("scheduler", settings, scheduler_tasks))


def run_api(settings: Settings) -> None:
    from api.app import create_app

    configure_logging(settings, role="api")
    config = uvicorn.Config(
        create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning",
        access_log=False, proxy_headers=True, server_header=False, timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()
