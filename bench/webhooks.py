"""Webhook benchmark: delivery throughput and announce -> signed webhook latency.

    .venv/bin/python bench/webhooks.py [--deliveries 20000] [--events 500] [--rate 100] [--dispatchers 1]

Starts embedded PostgreSQL, Redis and NATS (or uses DATABASE_URL/REDIS_URL/NATS_URL when
set), migrates, and runs a receiver in its own process on 127.0.0.1 (uvicorn + httptools,
answers 200 at once).

1. throughput: ``--deliveries`` due deliveries (distinct payments, spread over 8 endpoints
   of 4 merchants) are sent by the webhook dispatcher (the worker's delivery loop, signing
   both header sets per attempt) as fast as it goes: deliveries/s.
2. latency: the real worker role (``openpay run worker``: outbox relay -> JetStream ->
   webhook consumer -> dispatcher) in its own process; ``--events`` payment.paid messages
   are announced in their own transactions at ``--rate``/s; the receiver measures commit ->
   signed webhook received, p50/p99.

The block -> webhook measurement (a paid payment with instant mining and confirmation
depth 0) extends phase 2: the indexer and payments domains announce payment.paid from the
block's event; ``measure_latency`` takes the announcing coroutine as a parameter for that.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson
from sqlalchemy import func, select, update

from node.bus import announce
from node.config import Environment, Settings
from node.db import Database
from node.db.migrate import upgrade
from node.infra.nats import EmbeddedNats
from node.infra.postgres import EmbeddedPostgres
from node.infra.process import free_port
from node.infra.redis import EmbeddedRedis
from node.webhooks import repository as repo
from node.webhooks import service
from node.webhooks.dispatcher import DeliveryDispatcher
from node.webhooks.models import Delivery, DeliveryStatus, Endpoint
from node.webhooks.schemas import EndpointIn

# --- the receiver process ---


def serve_receiver(port: int) -> None:
    import uvicorn

    count = 0
    latencies: list[float] = []

    async def app(scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        nonlocal count
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "GET":
            payload = orjson.dumps({"count": count, "latencies": latencies})
        else:
            count += 1
            if b'"benchSentNs"' in body:
                latencies.append((time.time_ns() - orjson.loads(body)["benchSentNs"]) / 1e6)
            payload = b"{}"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False, http="httptools",
                loop="uvloop", lifespan="off", backlog=4096)


def start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve-receiver", str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/stats", timeout=0.5)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("receiver did not start")


async def receiver_stats(url: str) -> dict[str, object]:
    async with httpx.AsyncClient() as http:
        return orjson.loads((await http.get(url + "/stats")).content)  # type: ignore[no-any-return]


# --- setup ---


async def make_endpoints(db: Database, settings: Settings, url: str, merchants: int, per_merchant: int,
                         events: list[str]) -> list[Endpoint]:
    endpoints = []
    async with db.unit_of_work() as session:
        for _ in range(merchants):
            merchant = uuid.uuid4()
            for n in range(per_merchant):
                endpoints.append(await service.create_endpoint(
                    session, settings, merchant, EndpointIn(url=f"{url}/hook/{n}", events=events, mode="test")))
    return endpoints


# --- 1. throughput ---


def serve_dispatcher() -> None:
    """An extra dispatcher process (deliveries are claimed with SKIP LOCKED, so several share the work)."""
    import signal

    async def main() -> None:
        settings = Settings()
        db = Database.from_settings(settings)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await DeliveryDispatcher(db, settings).run(stop)
        await db.dispose()

    asyncio.run(main())


async def measure_throughput(db: Database, settings: Settings, url: str, count: int, dispatchers: int = 1) -> float:
    endpoints = await make_endpoints(db, settings, url, merchants=4, per_merchant=2, events=["payment.*"])
    now = datetime.now(UTC)
    for start in range(0, count, 2000):
        async with db.unit_of_work() as session:
            rows = []
            for n in range(start, min(count, start + 2000)):
                endpoint = endpoints[n % len(endpoints)]
                payment = {"id": str(uuid.uuid4()), "merchantId": str(endpoint.merchant_id), "status": "PAID",
                           "amount": "100", "currency": "USDT", "paymentNo": f"PAY-20261124-{n:08x}"}
                rows.append(repo.NewDelivery(
                    endpoint_id=endpoint.id, merchant_id=endpoint.merchant_id, event_id=uuid.uuid4(),
                    event_type="payment.paid", ordering_key=payment["id"], occurred_at=now,
                    body=service.webhook_body("payment.paid", payment)))
            await repo.insert_deliveries(session, rows)
    ids = [e.id for e in endpoints]
    dispatcher = DeliveryDispatcher(db, settings)
    stop = asyncio.Event()
    env = {**os.environ, "DATABASE_URL": settings.database_url or "", "OPENPAY_ENVIRONMENT": "test"}
    extra = [subprocess.Popen([sys.executable, __file__, "--serve-dispatcher"], env=env)  # noqa: ASYNC220
             for _ in range(dispatchers - 1)]
    started = time.perf_counter()
    task = asyncio.ensure_future(dispatcher.run(stop))
    while True:
        await asyncio.sleep(0.2)
        async with db.unit_of_work() as session:
            done = (await session.execute(select(func.count()).select_from(Delivery).where(
                Delivery.endpoint_id.in_(ids), Delivery.status == DeliveryStatus.delivered))).scalar_one()
        if done >= count:
            break
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    for process in extra:
        process.terminate()
        process.wait(10)
    async with db.unit_of_work() as session:
        await session.execute(update(Endpoint).where(Endpoint.id.in_(ids)).values(enabled=False))
    return count / elapsed


# --- 2. latency ---


async def announce_paid(db: Database, merchant: uuid.UUID, n: int) -> None:
    """payment.paid from the outbox, as the payments domain will announce it."""
    payment_id = str(uuid.uuid4())
    async with db.unit_of_work() as session:
        await announce(session, "payment.paid", {
            "id": payment_id, "merchantId": str(merchant), "status": "PAID", "amount": "100",
            "paymentNo": f"PAY-20261124-{n:08x}", "benchSentNs": time.time_ns(),
        }, key=payment_id)


async def measure_latency(
    db: Database, settings: Settings, url: str, events: int, rate: float,
    announce_one: Callable[[Database, uuid.UUID, int], Awaitable[None]] = announce_paid,
) -> list[float]:
    [endpoint] = await make_endpoints(db, settings, url, merchants=1, per_merchant=1, events=["payment.*"])
    env = dict(os.environ)
    env.update({"DATABASE_URL": settings.database_url or "", "REDIS_URL": settings.redis_url or "",
                "NATS_URL": settings.nats_url or "", "OPENPAY_ENVIRONMENT": "test", "OPENPAY_LOG_LEVEL": "WARNING",
                "OPENPAY_SMTP_PORT": "9"})
    worker = subprocess.Popen([sys.executable, "-m", "node.cli", "run", "worker"], env=env)  # noqa: ASYNC220
    try:
        # warm-up: the first webhooks after a start wait for imports, consumers, connections, keys
        # (~1 s); the figures are for a running worker
        for n in range(50):
            await announce_one(db, endpoint.merchant_id, -1 - n)
            await asyncio.sleep(0.02)
        deadline = time.monotonic() + 60
        while len((await receiver_stats(url))["latencies"]) < 50 and time.monotonic() < deadline:  # type: ignore[arg-type]
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        before = len((await receiver_stats(url))["latencies"])  # type: ignore[arg-type]
        for n in range(events):
            await announce_one(db, endpoint.merchant_id, n)
            await asyncio.sleep(1 / rate)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            latencies: list[float] = (await receiver_stats(url))["latencies"]  # type: ignore[assignment]
            if len(latencies) - before >= events:
                break
            await asyncio.sleep(0.2)
        return latencies[before:]
    finally:
        worker.terminate()
        worker.wait(10)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> None:
    servers: list[object] = []
    base = Settings(_env_file=None, environment=Environment.test)  # type: ignore[call-arg]
    urls = {"database_url": base.database_url, "redis_url": base.redis_url, "nats_url": base.nats_url}
    data = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    if not urls["database_url"]:
        pg = EmbeddedPostgres(data / "pg", free_port(), durable=False)
        pg.start()
        servers.append(pg)
        urls["database_url"] = pg.url
    if not urls["redis_url"]:
        rd = EmbeddedRedis(data / "redis", free_port(), durable=False)
        rd.start()
        servers.append(rd)
        urls["redis_url"] = rd.url
    if not urls["nats_url"]:
        nt = EmbeddedNats(data / "nats", free_port())
        nt.start()
        servers.append(nt)
        urls["nats_url"] = nt.url
    settings = base.with_urls(**urls)
    receiver, url = start_receiver()
    try:
        upgrade(settings)
        db = Database.from_settings(settings)
        try:
            rate = await measure_throughput(db, settings, url, args.deliveries, args.dispatchers)
            print(f"throughput: {rate:,.0f} deliveries/s ({args.deliveries:,} signed deliveries, 8 endpoints, "
                  f"{args.dispatchers} dispatcher process(es), receiver in another process)")
            latencies = await measure_latency(db, settings, url, args.events, args.rate)
            print(f"announce -> signed webhook received: p50 {percentile(latencies, 50):.1f} ms, "
                  f"p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms "
                  f"({len(latencies)} of {args.events} payment.paid at {args.rate:g}/s, worker role process)")
        finally:
            await db.dispose()
    finally:
        receiver.terminate()
        receiver.wait(10)
        for server in reversed(servers):
            server.stop()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--dispatchers", type=int, default=1, help="dispatcher processes (worker scale-out)")
    parser.add_argument("--serve-receiver", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-dispatcher", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_dispatcher:
        serve_dispatcher()
        return
    if args.serve_receiver:
        serve_receiver(args.serve_receiver)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
