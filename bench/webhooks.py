"""Webhook benchmark: delivery throughput, announce -> webhook and block -> webhook latency.

    .venv/bin/python bench/webhooks.py [--phases throughput,announce,block] [--deliveries 20000]
        [--events 500] [--rate 100] [--payments 500] [--payment-rate 20] [--profile-roles DIR]

Starts embedded PostgreSQL (with ``track_commit_timestamp``), Redis, NATS and anvil (or uses
DATABASE_URL/REDIS_URL/NATS_URL when set), migrates, and runs a receiver in its own process on
127.0.0.1 (uvicorn + httptools, answers 200 at once; under ``/verify/`` it checks both signatures
with the merchant's public key and records when each ``payment.paid`` arrived).

1. throughput: ``--deliveries`` due deliveries (distinct payments, spread over 8 endpoints of 4
   merchants) are sent by the webhook dispatcher (the worker's delivery loop, signing both header
   sets per attempt) as fast as it goes: deliveries/s, and CPU ms per delivery of the dispatcher,
   the receiver and PostgreSQL (the figures to compare on a shared machine).
2. announce: the worker role (``openpay run worker``: outbox relay -> JetStream -> webhook consumer
   -> dispatcher) in its own process; ``--events`` payment.paid messages announced in their own
   transactions at ``--rate``/s: outbox commit -> signed webhook received.
3. block: contracts deployed on anvil, ``openpay run indexer`` (newHeads over WebSocket,
   confirmation depth 0) and ``openpay run worker`` as processes; ``--payments`` payments created
   through ``node.payments``, then paid one per block with ``pay(intent)`` at ``--payment-rate``/s.
   Each block is mined by ``evm_mine`` right after its transaction is sent (with automine, anvil
   answers ``eth_sendTransaction`` before the block exists); latency = ``evm_mine`` returned ->
   the signed ``payment.paid`` webhook received, p50/p99/max, with the stage breakdown from the
   rows' commit timestamps and CPU ms per payment of each role and PostgreSQL.
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
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson
from sqlalchemy import func, select, text, update

from chain.artifacts import load_artifacts
from chain.deploy import Deployment
from node.auth.principal import MerchantPrincipal
from node.bus import announce
from node.config import Environment, Settings
from node.db import Database
from node.db.migrate import upgrade
from node.devnode import ensure_contracts
from node.exchange import rates
from node.infra.anvil import EmbeddedAnvil
from node.infra.nats import EmbeddedNats
from node.infra.postgres import EmbeddedPostgres
from node.infra.process import free_port
from node.infra.redis import EmbeddedRedis
from node.payments import service as payments
from node.payments.models import Payment
from node.payments.schemas import PaymentRequest
from node.payments.service import intent_of
from node.webhooks import repository as repo
from node.webhooks import service
from node.webhooks.dispatcher import DeliveryDispatcher
from node.webhooks.models import Delivery, DeliveryStatus, Endpoint
from node.webhooks.schemas import EndpointIn
from node.webhooks.signing import public_key_b64

BENCH_CHAIN_ID = 31_999
PAYER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"  # anvil's 4th default account (unlocked)

# --- the receiver process ---


def serve_receiver(port: int) -> None:
    """Answers 200 at once. Under ``/verify/`` it also checks both signatures (the original's over
    ms timestamp + body, the Standard Webhooks one over id.timestamp.body) with the key POSTed to
    ``/config``, and records when each ``payment.paid`` arrived (before checking, so the check's
    cost is not counted)."""
    import base64

    import uvicorn
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    count = 0
    bad = 0
    latencies: list[float] = []
    paid: dict[str, int] = {}
    public: list[Ed25519PublicKey] = []

    def verified(headers: dict[bytes, bytes], body: bytes) -> bool:
        try:
            key = public[0]
            key.verify(base64.b64decode(headers[b"x-webhook-signature"]), headers[b"x-webhook-timestamp"] + body)
            message = headers[b"webhook-id"] + b"." + headers[b"webhook-timestamp"] + b"." + body
            for signature in headers[b"webhook-signature"].split():
                try:
                    key.verify(base64.b64decode(signature.removeprefix(b"v1a,")), message)
                    return True
                except InvalidSignature:
                    continue
            return False
        except (InvalidSignature, KeyError, IndexError, ValueError):
            return False

    async def app(scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        nonlocal count, bad
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        arrived = time.time_ns()
        if scope["method"] == "GET":
            payload = orjson.dumps({"count": count, "latencies": latencies, "paid": paid, "bad": bad})
        elif scope["path"] == "/config":
            public[:] = [Ed25519PublicKey.from_public_bytes(base64.b64decode(orjson.loads(body)["publicKey"]))]
            payload = b"{}"
        else:
            count += 1
            if b'"benchSentNs"' in body:
                latencies.append((arrived - orjson.loads(body)["benchSentNs"]) / 1e6)
            if scope["path"].startswith("/verify/"):
                if not verified(dict(scope["headers"]), body):
                    bad += 1
                event = orjson.loads(body)
                if event.get("event") == "payment.paid":
                    paid.setdefault(event["id"], arrived)
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


async def measure_throughput(db: Database, settings: Settings, url: str, count: int, dispatchers: int = 1,
                             receiver_pid: int | None = None, pgdata: Path | None = None,
                             ) -> tuple[float, dict[str, float]]:
    """Deliveries/s, and CPU ms per delivery of this process (the dispatcher), the receiver and
    PostgreSQL (when the bench started it)."""
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
    cpu = {"dispatcher": time.process_time(), "receiver": cpu_seconds(receiver_pid) if receiver_pid else 0.0,
           "postgres": postgres_cpu_seconds(pgdata)}
    task = asyncio.ensure_future(dispatcher.run(stop))
    while True:
        await asyncio.sleep(0.2)
        async with db.unit_of_work() as session:
            done = (await session.execute(select(func.count()).select_from(Delivery).where(
                Delivery.endpoint_id.in_(ids), Delivery.status == DeliveryStatus.delivered))).scalar_one()
        if done >= count:
            break
    elapsed = time.perf_counter() - started
    after = {"dispatcher": time.process_time(), "receiver": cpu_seconds(receiver_pid) if receiver_pid else 0.0,
             "postgres": postgres_cpu_seconds(pgdata)}
    cpu = {name: (after[name] - cpu[name]) * 1000 / count for name in cpu}
    stop.set()
    await task
    for process in extra:
        process.terminate()
        process.wait(10)
    async with db.unit_of_work() as session:
        await session.execute(update(Endpoint).where(Endpoint.id.in_(ids)).values(enabled=False))
    return count / elapsed, cpu


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


# --- 3. block -> signed webhook received ---


async def _rpc(http: httpx.AsyncClient, url: str, method: str, params: list[object]) -> Any:
    reply = orjson.loads((await http.post(url, content=orjson.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
        headers={"content-type": "application/json"})).content)
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


async def _transact(http: httpx.AsyncClient, url: str, sender: str, to: str, data: bytes) -> str:
    tx_hash: str = await _rpc(http, url, "eth_sendTransaction", [
        {"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(400_000)}])
    return tx_hash


def role_env(settings: Settings, **extra: str) -> dict[str, str]:
    """What `openpay run <role>` reads: the URLs, the chain, and quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENPAY_")}
    env.update({
        "DATABASE_URL": settings.database_url or "", "REDIS_URL": settings.redis_url or "",
        "NATS_URL": settings.nats_url or "", "RPC_URL": settings.rpc_url or "",
        "OPENPAY_CHAIN_ID": str(settings.chain_id), "OPENPAY_DEPLOYMENT_FILE": str(settings.deployment_file),
        "OPENPAY_ENVIRONMENT": "test", "OPENPAY_LOG_LEVEL": "WARNING", "OPENPAY_LOG_JSON": "false",
        "OPENPAY_INDEXER_CONFIRMATIONS": str(settings.indexer_confirmations), "OPENPAY_SMTP_PORT": "9", **extra,
    })
    return env


async def create_payments(db: Database, settings: Settings, merchant: uuid.UUID, count: int) -> list[Payment]:
    principal = MerchantPrincipal(merchant_id=merchant, user_id=None, role=None, branch_id=None, mode="test",
                                  api_key_id=uuid.uuid4())
    created = []
    for start in range(0, count, 50):
        async with db.unit_of_work() as session:
            for n in range(start, min(count, start + 50)):
                created.append(await payments.create(session, settings, principal, PaymentRequest(
                    amount=Decimal("10.5"), currency="USDT", merchant_trade_no=f"bench-{n}")))
    return created


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux), to divide by the work done."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds(pgdata: Path | None) -> float:
    """CPU time of the bench's own PostgreSQL: the postmaster and its backends (0 if not ours)."""
    if pgdata is None or not (pgdata / "postmaster.pid").exists():
        return 0.0
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                total += cpu_seconds(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


def role_command(role: str, profile: Path | None) -> list[str]:
    if profile is None:
        return [sys.executable]
    return [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(profile / f"{role}.txt")]


async def measure_block_latency(
    db: Database, settings: Settings, url: str, count: int, rate: float, profile: Path | None = None,
    pgdata: Path | None = None,
) -> tuple[list[float], dict[str, list[float]], float, int, dict[str, float]]:
    """``count`` payments created first, then paid one per block at ``rate``/s; latency = the moment
    ``evm_mine`` returns (the block with the payment's ``pay`` exists; newHeads goes out) -> the
    signed ``payment.paid`` webhook received. Returns latencies (ms), the stage breakdown, the mean
    ``evm_mine`` round trip (ms) and the number of signatures that failed to verify."""
    [endpoint] = await make_endpoints(db, settings, url + "/verify", merchants=1, per_merchant=1,
                                      events=["payment.*"])
    async with db.unit_of_work() as session:
        [key] = await service.public_keys(session, endpoint.merchant_id)
        await rates.record(session, "LKR", {"USDT": Decimal("300")}, "COINGECKO")
    async with httpx.AsyncClient() as http:
        await http.post(url + "/config", content=orjson.dumps({"publicKey": public_key_b64(key.public_key)}))
    deployment = Deployment.load(settings.deployment_file)  # type: ignore[arg-type]
    token = load_artifacts()["MockUSDT"]
    gateway = load_artifacts()["OpenPayGateway"]
    rpc_url = settings.rpc_url or ""
    roles = {role: subprocess.Popen([*role_command(role, profile), "-m", "node.cli", "run", role],  # noqa: ASYNC220
                                    env=role_env(settings)) for role in ("indexer", "worker")}
    mined: dict[str, int] = {}
    mine_ms: list[float] = []
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for data in (token.encode_call("faucet", PAYER, 10**30),
                         token.encode_call("approve", deployment.gateway, 10**30)):
                await _transact(http, rpc_url, PAYER, deployment.token, data)
            created = await create_payments(db, settings, endpoint.merchant_id, count + 20)
            # warm-up: the first payments after a start wait for connections, keys, caches
            warm, measured = created[:20], created[20:]
            for payment in warm:
                await _transact(http, rpc_url, PAYER, deployment.gateway, gateway.encode_call(
                    "pay", intent_of(payment).as_tuple(), bytes(payment.signature)))
            await _wait_paid(url, {str(p.id) for p in warm}, 60)
            calls = [(str(p.id), gateway.encode_call("pay", intent_of(p).as_tuple(), bytes(p.signature)))
                     for p in measured]
            # each payment's block is mined on request, so the moment it exists is known: with
            # automine anvil answers eth_sendTransaction before its block is mined
            await _rpc(http, rpc_url, "evm_setAutomine", [False])
            cpu = {role: cpu_seconds(process.pid) for role, process in roles.items()}
            cpu["postgres"] = postgres_cpu_seconds(pgdata)
            for pid, data in calls:
                started = time.time_ns()
                tx_hash = await _transact(http, rpc_url, PAYER, deployment.gateway, data)
                before = time.time_ns()
                await _rpc(http, rpc_url, "evm_mine", [])
                mined[pid] = time.time_ns()
                mine_ms.append((mined[pid] - before) / 1e6)
                if len(mined) <= 3:
                    assert await _rpc(http, rpc_url, "eth_getTransactionReceipt", [tx_hash]) is not None
                await asyncio.sleep(max(0.0, 1 / rate - (time.time_ns() - started) / 1e9))
            await _rpc(http, rpc_url, "evm_setAutomine", [True])
        stats = await _wait_paid(url, set(mined), 60)
        after = {role: cpu_seconds(process.pid) for role, process in roles.items()}
        after["postgres"] = postgres_cpu_seconds(pgdata)
        cpu = {name: (after[name] - cpu[name]) * 1000 / len(mined) for name in cpu}
    finally:
        for process in roles.values():
            process.terminate()
        for process in roles.values():
            process.wait(30)
    received: dict[str, int] = stats["paid"]  # type: ignore[assignment]
    latencies = [(received[pid] - at) / 1e6 for pid, at in mined.items() if pid in received]
    stages = await _stages(db, mined, received)
    missing = [pid for pid in mined if pid not in received]
    if missing:
        async with db.unit_of_work() as session:
            rows = (await session.execute(text(
                "SELECT p.status, o.type, o.published_at IS NOT NULL AS relayed, d.status AS delivery, count(*) "
                "FROM payments.payments p LEFT JOIN bus.outbox o ON o.key = p.id::text AND o.type <> "
                "'payment.initiated' LEFT JOIN webhooks.deliveries d ON d.event_id = o.message_id "
                "WHERE p.id = ANY(CAST(:ids AS uuid[])) GROUP BY 1, 2, 3, 4"), {"ids": missing})).all()
        print(f"not received: {len(missing)}: " + "; ".join(str(tuple(r)) for r in rows))
    return latencies, stages, sum(mine_ms) / len(mine_ms), int(stats["bad"]), cpu  # type: ignore[call-overload]


async def _wait_paid(url: str, ids: set[str], timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        stats = await receiver_stats(url)
        if ids <= set(stats["paid"]) or time.monotonic() > deadline:  # type: ignore[call-overload]
            return stats
        await asyncio.sleep(0.2)


_STAGES_SQL = text("""
SELECT o.key AS payment_id, o.created_at AS indexer_start,
       (SELECT max(pg_xact_commit_timestamp(r.xmin)) FROM payments.receipts r
        WHERE r.payment_id = CAST(o.key AS uuid)) AS indexer_commit,
       o.published_at AS relay_start, pg_xact_commit_timestamp(o.xmin) AS relay_commit,
       d.created_at AS consumer_start, pg_xact_commit_timestamp(m.xmin) AS consumer_commit,
       a.started_at AS attempt_start
FROM bus.outbox o
JOIN webhooks.deliveries d ON d.event_id = o.message_id
JOIN bus.processed_messages m ON m.consumer = 'webhooks' AND m.message_id = o.message_id
JOIN webhooks.attempts a ON a.delivery_id = d.id AND a.attempt = 1
WHERE o.type = 'payment.paid' AND o.key = ANY(:ids)
""")

STAGES = [
    ("mined", "indexer_start", "indexer: head noticed, logs fetched"),
    ("indexer_start", "indexer_commit", "indexer: handlers, commit"),
    ("indexer_commit", "relay_start", "relay: NOTIFY -> claim"),
    ("relay_start", "relay_commit", "relay: publish, commit"),
    ("relay_commit", "consumer_start", "consumer: JetStream fetch"),
    ("consumer_start", "consumer_commit", "consumer: deliveries, commit"),
    ("consumer_commit", "attempt_start", "sender: NOTIFY -> claim, keys"),
    ("attempt_start", "received", "sender: sign, POST, receive"),
]


async def _stages(db: Database, mined: dict[str, int], received: dict[str, int]) -> dict[str, list[float]]:
    """Where the time goes, from the rows' timestamps: PostgreSQL's now() (a transaction's start)
    and, when ``track_commit_timestamp`` is on (the bench's own PostgreSQL), commit times of the
    rows each step inserted. Relay and consumer overlap a little: the relay publishes before it
    commits."""
    async with db.unit_of_work() as session:
        rows = (await session.execute(_STAGES_SQL, {"ids": list(mined)})).mappings().all()
    stages: dict[str, list[float]] = {name: [] for _, _, name in STAGES}
    for row in rows:
        pid = row["payment_id"]
        if pid not in received:
            continue
        points = {k: v.timestamp() for k, v in row.items() if k != "payment_id" and v is not None}
        points.update(mined=mined[pid] / 1e9, received=received[pid] / 1e9)
        for start, end, name in STAGES:
            if start in points and end in points:
                stages[name].append((points[end] - points[start]) * 1000)
    return stages


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> None:
    phases = set(args.phases.split(","))
    servers: list[object] = []
    base = Settings(_env_file=None, environment=Environment.test)
    urls = {"database_url": base.database_url, "redis_url": base.redis_url, "nats_url": base.nats_url}
    data = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    pgdata: Path | None = None
    if not urls["database_url"]:
        pg = EmbeddedPostgres(data / "pg", free_port(), durable=False)
        pg.start()
        # commit times of the rows each step writes: the stage breakdown of the block phase
        pg.psql("ALTER SYSTEM SET track_commit_timestamp = on")
        pg.stop()
        pg.start()
        pgdata = pg.pgdata
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
    settings = base.with_urls(**urls).model_copy(update={"data_dir": data})
    receiver, url = start_receiver()
    try:
        upgrade(settings)
        db = Database.from_settings(settings)
        try:
            if "throughput" in phases:
                rate, cpu = await measure_throughput(db, settings, url, args.deliveries, args.dispatchers,
                                                     receiver.pid, pgdata)
                print(f"throughput: {rate:,.0f} deliveries/s ({args.deliveries:,} signed deliveries, 8 endpoints, "
                      f"{args.dispatchers} dispatcher process(es), receiver in another process); CPU per delivery: "
                      + ", ".join(f"{name} {ms:.3f} ms" for name, ms in cpu.items() if ms), flush=True)
            if "announce" in phases:
                latencies = await measure_latency(db, settings, url, args.events, args.rate)
                print(f"announce -> signed webhook received: {_summary(latencies)} "
                      f"({len(latencies)} of {args.events} payment.paid at {args.rate:g}/s, worker role process)",
                      flush=True)
            if "block" in phases:
                anvil = EmbeddedAnvil(None, free_port(), chain_id=BENCH_CHAIN_ID)
                anvil.start()
                servers.append(anvil)
                chain = settings.model_copy(update={"rpc_url": anvil.url, "chain_id": BENCH_CHAIN_ID,
                                                    "indexer_confirmations": 0})
                chain = chain.model_copy(update={"deployment_file": ensure_contracts(chain, lambda _: None)})
                latencies, stages, send_ms, bad, role_cpu = await measure_block_latency(
                    db, chain, url, args.payments, args.payment_rate, args.profile_roles, pgdata)
                print(f"block -> signed webhook received: {_summary(latencies)} ({len(latencies)} of "
                      f"{args.payments} payments paid one per block at {args.payment_rate:g}/s, confirmation "
                      f"depth 0; from evm_mine returning (mean round trip "
                      f"{send_ms:.1f} ms); indexer and worker role processes; {bad} bad signatures)")
                print("  CPU per payment: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in role_cpu.items() if ms))
                for name, values in stages.items():
                    print(f"  {name:<34} {_summary(values)}")
        finally:
            await db.dispose()
    finally:
        receiver.terminate()
        receiver.wait(10)
        for server in reversed(servers):
            server.stop()  # type: ignore[attr-defined]


def _summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (f"p50 {percentile(values, 50):.1f} ms, p99 {percentile(values, 99):.1f} ms, "
            f"max {max(values):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--dispatchers", type=int, default=1, help="dispatcher processes (worker scale-out)")
    parser.add_argument("--payments", type=int, default=500, help="payments paid on chain (block phase)")
    parser.add_argument("--payment-rate", type=float, default=20.0, help="payments (blocks) per second")
    parser.add_argument("--profile-roles", type=Path, help="write pyinstrument profiles of the role processes here")
    parser.add_argument("--phases", default="throughput,announce,block", help="which measurements to run")
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
