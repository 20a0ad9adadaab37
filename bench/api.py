"""API benchmark: payment creation through the HMAC SDK route beside a bare FastAPI endpoint.

    .venv/bin/python bench/api.py [--duration 10] [--rounds 5] [--connections 32] [--api-workers 2]
                                  [--loaders 1] [--profile out.prof]

The defaults are the figures' run: two API processes (one per core, as the API scales) and 32
connections in flight (16 per process: PostgreSQL takes the payments in batches of about eight).

Starts embedded PostgreSQL, Redis, NATS and anvil (contracts deployed), migrates, creates a
merchant with a test key (node.merchants services) and a USDT/LKR rate, and raises the `api`
rate limit for the run through ``OPENPAY_RATE_LIMITS``. Then, each in its own process on
127.0.0.1 with uvicorn (uvloop + httptools):

1. bare: a FastAPI app with one POST route answering a small JSON body (orjson), no DB;
2. api: ``create_app`` (the node's API role), ``POST /v1/sdk/payments``: HMAC auth (DB key
   lookup, Redis replay claim + per-key rate limit in one round trip), rate lock (cached),
   fees, risk SQL, signed EIP-712 intent, CREATE2 deposit address, payment + outbox rows,
   one commit.

The load generator is a separate process (a keep-alive HTTP/1.1 client on asyncio protocols,
closed loop, ``--connections`` in flight): each request gets a fresh ms timestamp, a unique
``merchantTradeNo`` (so a unique body and signature: the replay check passes) and its own HMAC.
The two alternate for ``--rounds`` rounds (this machine's speed drifts over a minute). Printed per
round: requests/s, p50/p90/p99/max latency, errors, CPU per request of each process (server,
PostgreSQL, Redis, load generator), and the ratio api/bare; then the medians. ``--profile out.txt`` samples the API
process with pyinstrument.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]

from fastapi import Request  # noqa: E402  (module level: FastAPI resolves the route's annotations here)

# ------------------------------------------------------------------ servers (child processes)


def bare_app() -> Any:
    from fastapi import FastAPI

    from api.responses import JSON

    app = FastAPI()

    @app.post("/v1/bare")
    async def bare(request: Request) -> JSON:
        body = await request.body()
        return JSON({"data": {"id": str(uuid.uuid4()), "size": len(body), "status": "INITIATED"}}, status_code=201)

    return app


def node_app() -> Any:
    from api.app import create_app
    from node.config import Settings

    return create_app(Settings())


def serve(kind: str, port: int, profile: str | None) -> None:
    import uvicorn

    if kind == "api":
        from node.config import Settings
        from node.logs import configure_logging

        configure_logging(Settings(), role="api")
    options: dict[str, Any] = {"host": "127.0.0.1", "port": port, "loop": "uvloop", "http": "httptools",
                               "log_level": "warning", "access_log": False, "server_header": False}
    if profile:
        # pyinstrument (pip install pyinstrument): samples the event loop thread, idle time included
        import signal

        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005, async_mode="disabled")
        config = uvicorn.Config(bare_app() if kind == "bare" else node_app(), **options)
        server = uvicorn.Server(config)
        signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
        profiler.start()
        try:
            server.run()
        finally:
            profiler.stop()
            Path(profile).write_text(profiler.output_text(unicode=False, color=False, show_all=False))
        return
    uvicorn.run(bare_app() if kind == "bare" else node_app(), **options)


# ------------------------------------------------------------------ the load generator (child process)


class _Client(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request in flight: the load generator's CPU per
    request is a few microseconds (aiohttp's was ~0.1-0.2 ms, taken from the cores the servers
    under test share with it)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.reply: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17:head.find(b"\r\n", at + 2) if head.find(b"\r\n", at + 2) > 0 else None])
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[:end + 4 + length]
        if self.reply is not None and not self.reply.done():
            self.reply.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(ConnectionError(f"closed: {exc}"))

    async def request(self, data: bytes) -> int:
        assert self.transport is not None
        self.reply = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.reply


def load(url: str, path: str, credential: str | None, duration: float, connections: int, warmup: float,
         worker: int) -> None:
    import uvloop

    key_id, _, secret = (credential or "").partition(".")
    hkey = hashlib.sha256(secret.encode()).digest()
    servers = [u.removeprefix("http://").partition(":") for u in url.split(",")]

    async def main() -> None:
        latencies: list[float] = []
        errors: dict[str, int] = {}
        counter = 0
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        measure_from = started + warmup
        stop = measure_from + duration

        async def one_loop(index: int) -> None:
            nonlocal counter
            host, _, port = servers[index % len(servers)]
            _, client = await loop.create_connection(_Client, host, int(port))
            while True:
                now = time.perf_counter()
                if now >= stop:
                    return
                counter += 1
                body = b'{"amount":"10.00","currency":"USDT","merchantTradeNo":"B%d-%d-%d"}' % (
                    worker, counter, time.time_ns())
                head = b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
                    path.encode(), host.encode(), len(body))
                if credential:
                    ts = str(int(time.time() * 1000))
                    sig = hmac.new(hkey, ts.encode() + b"POST" + path.encode() + body, hashlib.sha256)
                    head += b"x-api-key: %s\r\nx-timestamp: %s\r\nx-signature: %s\r\n" % (
                        key_id.encode(), ts.encode(), sig.hexdigest().encode())
                t0 = time.perf_counter()
                try:
                    status: int | str = await client.request(head + b"\r\n" + body)
                except ConnectionError as exc:
                    status = type(exc).__name__
                    _, client = await loop.create_connection(_Client, host, int(port))
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop:
                    if status == 201:
                        latencies.append((t1 - t0) * 1000)
                    else:
                        errors[str(status)] = errors.get(str(status), 0) + 1

        await asyncio.gather(*(one_loop(i) for i in range(connections)))
        print(json.dumps({"latencies": latencies, "errors": errors, "duration": duration}))

    uvloop.run(main())


# ------------------------------------------------------------------ orchestration


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            httpx.get(url + "/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def _cpu_by_role() -> dict[str, float]:
    """CPU seconds so far of every process on the machine, summed by the role it plays here."""
    import psutil

    roles: dict[str, float] = {}
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        name = proc.info["name"] or ""
        role = ("server" if "--serve" in cmdline else "load generator" if "--load" in cmdline
                else "postgres" if name.startswith("postgres") else "redis" if "redis" in name else "other")
        times = proc.info["cpu_times"]
        if times is not None:
            roles[role] = roles.get(role, 0.0) + times.user + times.system
    return roles


def _sample_cpu(delay: float, span: float, into: dict[str, float]) -> None:
    time.sleep(delay)
    before = _cpu_by_role()
    time.sleep(span)
    after = _cpu_by_role()
    into.update({role: after[role] - before.get(role, 0.0) for role in after})


def _commits_and_payments(database_url: str) -> tuple[int, int]:
    import asyncpg

    async def read() -> tuple[int, int]:
        connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            row = await connection.fetchrow(
                "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), "
                "(SELECT count(*) FROM payments.payments)")
            return int(row[0]), int(row[1])
        finally:
            await connection.close()

    return asyncio.run(read())


def run_load(url: str, path: str, credential: str | None, args: argparse.Namespace) -> dict[str, Any]:
    import threading

    per = max(1, args.connections // args.loaders)
    procs = [subprocess.Popen(
        [sys.executable, __file__, "--load", url, "--path", path, "--credential", credential or "",
         "--duration", str(args.duration), "--connections", str(per), "--warmup", str(args.warmup),
         "--worker", str(i)], stdout=subprocess.PIPE, cwd=ROOT) for i in range(args.loaders)]
    # CPU over the middle of the measured window (the loaders take ~1 s to start)
    cpu: dict[str, float] = {}
    sampler = threading.Thread(target=_sample_cpu, args=(args.warmup + 1.5, args.duration - 2, cpu), daemon=True)
    sampler.start()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=args.duration + args.warmup + 120)
        result = json.loads(out.decode().strip().splitlines()[-1])
        latencies += result["latencies"]
        for k, v in result["errors"].items():
            errors[k] = errors.get(k, 0) + v
    sampler.join()
    return {"cpu": {role: seconds / (args.duration - 2) for role, seconds in cpu.items()},
            "rps": len(latencies) / args.duration, "p50": percentile(latencies, 50),
            "p90": percentile(latencies, 90), "p99": percentile(latencies, 99), "max": max(latencies, default=0.0),
            "n": len(latencies), "slow": sum(1 for ms in latencies if ms > 100), "errors": errors}


def report(name: str, r: dict[str, Any]) -> str:
    per_request = ", ".join(f"{role} {1000 * share / r['rps']:.3f}" for role, share in
                            sorted(r["cpu"].items(), key=lambda kv: -kv[1]) if share > 0.005) if r["rps"] else ""
    return (f"{name:<34} {r['rps']:>9,.0f} req/s   p50 {r['p50']:6.1f}  p90 {r['p90']:6.1f}  p99 {r['p99']:6.1f}  "
            f"max {r['max']:6.1f} ms   ({r['n']:,} ok, {r['slow']} over 100 ms, errors {r['errors'] or 0})\n"
            f"{'':<36}CPU ms per request: {per_request}; cores busy {sum(r['cpu'].values()):.2f}")


async def prepare(settings: Any) -> str:
    """A merchant with KYC approved and a test key; the USDT/LKR rate. Returns "<keyId>.<secret>"."""
    from node.db import Database
    from node.exchange import rates
    from node.merchants import api_keys, service

    db = Database.from_settings(settings)
    try:
        async with db.unit_of_work() as session:
            merchant, user = await service.create_merchant(
                session, settings, business_name="Bench Tea House", email=f"bench-{uuid.uuid4().hex[:8]}@example.com",
                password="Bench-password-1234", name="Bench", kyc_status="APPROVED", email_verified=True,
                send_emails=False, actor_type="SYSTEM")
            key = await api_keys.create_key(session, settings, merchant.id, mode="test", name="bench",
                                            created_by=user.id)
            await rates.record(session, "LKR", {"USDT": Decimal("300")}, "COINGECKO")
        return f"{key.key.key_id}.{key.secret}"
    finally:
        await db.dispose()


def orchestrate(args: argparse.Namespace) -> None:
    from chain.client import make_web3
    from chain.deploy import LocalSigner, deploy
    from node.config import DEV_DEPLOYER_KEY, DEV_OPERATOR_KEY, Environment, Settings
    from node.db.migrate import upgrade
    from node.infra.anvil import EmbeddedAnvil
    from node.infra.nats import EmbeddedNats
    from node.infra.postgres import EmbeddedPostgres
    from node.infra.process import free_port
    from node.infra.redis import EmbeddedRedis

    data = Path(tempfile.mkdtemp(prefix="bench-api-"))
    servers: list[Any] = []
    children: list[subprocess.Popen[bytes]] = []
    try:
        pg = EmbeddedPostgres(data / "pg", free_port(), durable=False)
        rd = EmbeddedRedis(data / "redis", free_port(), durable=False)
        nt = EmbeddedNats(data / "nats", free_port())
        anvil = EmbeddedAnvil(None, free_port(), chain_id=31337)
        for server in (pg, rd, nt, anvil):
            server.start()
            servers.append(server)
        from eth_account import Account

        operator = Account.from_key(DEV_OPERATOR_KEY).address
        dep = deploy(make_web3(anvil.url), LocalSigner(DEV_DEPLOYER_KEY), operator=operator, treasurer=operator,
                     reporter=operator)
        deployment_file = data / "deployment.json"
        dep.save(deployment_file)
        limits = {"login_ip": "30/60", "login_account": "10/600", "totp": "5/300", "password_ip": "10/600",
                  "public_ip": "120/60", "api": "100000000/60", "admin": "600/60"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENPAY_")}
        env.update({"DATABASE_URL": pg.url, "REDIS_URL": rd.url, "NATS_URL": nt.url, "RPC_URL": anvil.url,
                    "OPENPAY_ENVIRONMENT": "test", "OPENPAY_CHAIN_ID": "31337",
                    "OPENPAY_DEPLOYMENT_FILE": str(deployment_file), "OPENPAY_RATE_LIMITS": json.dumps(limits),
                    "OPENPAY_LOG_JSON": "true", "OPENPAY_LOG_LEVEL": "WARNING",
                    # the pool must cover the requests in flight per process: connections beyond
                    # pool_size are overflow, closed on return and re-opened (connect, auth, type
                    # introspection) at a cost of tens of ms each; that capped the API at ~150/s
                    "OPENPAY_DATABASE_POOL_SIZE": str(max(10, args.connections // args.api_workers + 4))})
        os.environ.update(env)
        settings = Settings(_env_file=None, environment=Environment.test)  # type: ignore[call-arg]
        upgrade(settings)
        credential = asyncio.run(prepare(settings))

        # N processes of one worker each, on their own ports, and the load generator spreads its
        # connections over them evenly, as a load balancer would: uvicorn's --workers share one
        # socket, and the kernel handed one worker up to three quarters of the connections
        urls: dict[str, list[str]] = {"bare": [], "api": []}
        for kind in ("bare", "api"):
            for n in range(args.api_workers if kind == "api" else args.bare_workers):
                port = free_port()
                cmd = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
                if args.profile and kind == "api" and n == 0:
                    cmd += ["--profile", args.profile]
                proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
                children.append(proc)
                urls[kind].append(f"http://127.0.0.1:{port}")
                wait_up(urls[kind][-1], proc)
        # the two alternate, round after round: this machine's speed drifts by tens of percent over
        # a minute (a shared VM), and a ratio of runs minutes apart measured the drift as much as the API
        rounds: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for _ in range(args.rounds):
            bare = run_load(",".join(urls["bare"]), "/v1/bare", None, args)
            before = _commits_and_payments(pg.url)
            api = run_load(",".join(urls["api"]), "/v1/sdk/payments", credential, args)
            time.sleep(1)  # PostgreSQL publishes its counters about once a second
            after = _commits_and_payments(pg.url)
            api["batching"] = (after[0] - before[0]) / max(1, after[1] - before[1])
            rounds.append((bare, api))
        print(f"\n{os.cpu_count()} CPUs; {args.connections} connections, {args.rounds} rounds of {args.duration:g} s "
              f"each after {args.warmup:g} s warm-up, bare and API alternating; load generator: {args.loaders} "
              "separate process(es), keep-alive HTTP/1.1 on asyncio; "
              "PostgreSQL with fsync off (the API's cost is measured, not the disk's)")
        for i, (bare, api) in enumerate(rounds, 1):
            print(f"round {i}")
            print(report(f"bare FastAPI JSON ({args.bare_workers} proc)", bare))
            print(report(f"POST /v1/sdk/payments ({args.api_workers} proc)", api))
            print(f"PostgreSQL transactions per payment: {api['batching']:.2f}; "
                  f"ratio api/bare: {api['rps'] / bare['rps']:.2f}")
        ratios = sorted(api["rps"] / bare["rps"] for bare, api in rounds)
        api_rps = sorted(api["rps"] for _, api in rounds)
        p99 = max(api["p99"] for _, api in rounds)
        each = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"\nmedian of {len(rounds)} rounds: {api_rps[len(api_rps) // 2]:,.0f} payments/s, worst round's p99 "
              f"{p99:.1f} ms, ratio api/bare {ratios[len(ratios) // 2]:.2f} (rounds {each})"
              "   targets: >= 1,000 payments/s, p99 <= 50 ms, ratio >= 0.3")
    finally:
        for proc in children:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        for server in reversed(servers):
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=5, help="bare and API runs, alternating")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--loaders", type=int, default=1, help="load generator processes")
    parser.add_argument("--api-workers", type=int, default=2, help="API processes (one uvicorn worker each)")
    parser.add_argument("--bare-workers", type=int, default=1)
    parser.add_argument("--profile", help="profile the API process (pyinstrument) into this text file")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--credential", help=argparse.SUPPRESS)
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.profile)
    elif args.load:
        load(args.load, args.path, args.credential or None, args.duration, args.connections, args.warmup,
             args.worker)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
