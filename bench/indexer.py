"""Indexer benchmark: backfill throughput and peak RSS, live latency at the tip, decode ceiling.

    .venv/bin/python bench/indexer.py [--events 100000] [--live-rounds 100]
    .venv/bin/python bench/indexer.py --rpc-url URL --deployment FILE   # a chain prepared elsewhere

Starts its own PostgreSQL and anvil (instant mining) unless told otherwise, emits the events
(PaymentReceived-shaped logs from the benchmark emitter, plus real `pay` calls), then indexes
them with the production follower, handlers and COPY path, and prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain.artifacts import load_artifacts
from chain.client import RpcClient, SyncRpcClient, make_web3
from chain.deploy import Deployment, LocalSigner, deploy
from chain.intents import IntentDomain, PaymentIntent, sign_intent, uuid_to_bytes32
from indexer.follower import decode_rows
from indexer.heads import HeadWatcher, ws_url_for
from indexer.service import build_follower
from node.config import Settings
from node.db import Database
from node.db.migrate import upgrade
from node.infra.anvil import EmbeddedAnvil
from node.infra.postgres import EmbeddedPostgres
from node.infra.process import free_port
from node.runtime import tune_gc

DEPLOYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
OPERATOR_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ACCOUNTS = ["0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"]


def send(rpc: SyncRpcClient, sender: str, to: str, data: bytes, gas: int = 29_000_000) -> str:
    tx_hash: str = rpc.request("eth_sendTransaction", [{"from": sender, "to": to, "data": "0x" + data.hex(),
                                                        "gas": hex(gas)}])
    return tx_hash


def wait_receipt(rpc: SyncRpcClient, tx_hash: str, timeout: float = 120,
                 poll: float = 0.0005) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while (receipt := rpc.request("eth_getTransactionReceipt", [tx_hash])) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"transaction {tx_hash} not mined within {timeout:.0f}s")
        time.sleep(poll)
    return receipt  # type: ignore[no-any-return]


def prepare_chain(rpc: SyncRpcClient, url: str, events: int, pays: int) -> Deployment:
    artifacts = load_artifacts()
    deployment = deploy(make_web3(url), LocalSigner(DEPLOYER_KEY), operator=ACCOUNTS[1], treasurer=ACCOUNTS[0],
                        reporter=ACCOUNTS[0], artifacts=artifacts, event_emitter=True)
    emitter = artifacts["OpenPayEventEmitter"]
    merchant = uuid_to_bytes32(uuid.uuid4())
    per_tx = 1_000
    hashes = [send(rpc, ACCOUNTS[2], deployment.event_emitter or "",
                   emitter.encode_call("emitPayments", min(per_tx, events - i), merchant, deployment.token, i))
              for i in range(0, events - pays, per_tx)]
    for tx_hash in hashes:
        assert wait_receipt(rpc, tx_hash)["status"] == "0x1"
    token, gateway = artifacts["MockUSDT"], artifacts["OpenPayGateway"]
    wait_receipt(rpc, send(rpc, ACCOUNTS[2], deployment.token, token.encode_call("faucet", ACCOUNTS[2], 10**30)))
    wait_receipt(rpc, send(rpc, ACCOUNTS[2], deployment.token, token.encode_call("approve", deployment.gateway,
                                                                                  10**30)))
    domain = IntentDomain(deployment.chain_id, deployment.gateway)
    deadline = int(time.time()) + 86_400
    for i in range(pays):
        intent = PaymentIntent(uuid_to_bytes32(uuid.uuid4()), merchant, deployment.token, 10**18 + i, 10**16,
                               32_500, 325 * 10**8, deadline)
        send(rpc, ACCOUNTS[2], deployment.gateway,
             gateway.encode_call("pay", intent.as_tuple(), sign_intent(intent, domain, OPERATOR_KEY)), gas=300_000)
    rpc.request("evm_mine", [])
    return deployment


def as_handled(deployment: Deployment) -> tuple[Deployment, tuple[str, ...]]:
    """The emitter's logs are handled as the gateway's (balances credited), so the handlers do
    the work real payments would; the real gateway is followed too."""
    assert deployment.event_emitter
    return replace(deployment, gateway=deployment.event_emitter, event_emitter=None), (deployment.gateway,)


async def backfill(settings: Settings, deployment: Deployment) -> tuple[int, float]:
    db = Database.from_settings(settings)
    rpc = RpcClient(settings.rpc_urls, timeout=120)
    handled, extra = as_handled(deployment)
    follower = build_follower(settings, db, rpc, handled, extra_addresses=extra)
    started = time.perf_counter()
    while await follower.step():
        pass
    elapsed = time.perf_counter() - started
    async with db.unit_of_work() as session:
        from node.indexing.repository import log_count

        count = await log_count(session, deployment.chain_id)
    await rpc.aclose()
    await db.dispose()
    return count, elapsed


def stamp_heads(ws_url: str, out: Connection) -> None:
    """Runs in a process of its own: sends ``(block number, perf_counter)`` as each new head is
    announced, the moment a block is out for anyone to see. Its own process, so the indexer's
    work cannot delay a stamp (perf_counter is the system's monotonic clock, shared)."""
    import orjson
    import websockets

    async def run() -> None:
        async with websockets.connect(ws_url, max_size=2**24) as ws:
            await ws.send(orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                        "params": ["newHeads"]}).decode())
            await ws.recv()
            out.send((-1, 0.0))
            async for message in ws:
                out.send((int(orjson.loads(message)["params"]["result"]["number"], 16), time.perf_counter()))

    asyncio.run(run())


async def live(settings: Settings, deployment: Deployment, sync_rpc: SyncRpcClient, rounds: int,
               per_block: int, warmup: int = 0) -> list[float]:
    """ms from a block's announcement (newHeads, stamped by another process) to its cursor
    committed, for ``rounds`` blocks after ``warmup`` unmeasured ones (the first blocks after
    start-up pay for compiling and preparing statements once)."""
    import asyncpg

    stamps_in, stamps_out = multiprocessing.get_context("spawn").Pipe(duplex=False)
    stamper = multiprocessing.get_context("spawn").Process(
        target=stamp_heads, args=(ws_url_for(settings.rpc_urls[0]), stamps_out), daemon=True)
    stamper.start()
    assert stamps_in.poll(30) and stamps_in.recv()[0] == -1
    announced: dict[int, float] = {}
    db = Database.from_settings(settings)
    rpc = RpcClient(settings.rpc_urls, timeout=30)
    handled, extra = as_handled(deployment)
    heads = HeadWatcher(ws_url_for(settings.rpc_urls[0]))
    heads.start()
    follower = build_follower(settings, db, rpc, handled, extra_addresses=extra, heads=heads)
    stop = asyncio.Event()
    task = asyncio.ensure_future(follower.run(stop))
    watcher = await asyncpg.connect(db.dsn)
    emitter = load_artifacts()["OpenPayEventEmitter"]
    latencies = []
    loop = asyncio.get_running_loop()

    def mine(data: bytes) -> dict:  # type: ignore[type-arg]
        tx_hash = send(sync_rpc, ACCOUNTS[2], deployment.event_emitter or "", data)
        # not too eager: this thread shares the interpreter with the indexer
        return wait_receipt(sync_rpc, tx_hash, poll=0.002)

    for i in range(-warmup, rounds):
        data = emitter.encode_call("emitPayments", per_block, b"\x01" * 32, deployment.token,
                                   10**9 + (i + warmup) * per_block)
        # instant mining, and nobody else sends: the transaction makes the next block
        block = int(sync_rpc.request("eth_blockNumber"), 16) + 1
        mined = loop.run_in_executor(None, mine, data)
        while (await watcher.fetchval("SELECT block_number FROM chain.cursors WHERE chain_id = $1",
                                      deployment.chain_id) or 0) < block:
            if task.done():
                task.result()  # the follower stopped: say why
                raise RuntimeError("the follower stopped")
            await asyncio.sleep(0.001)
        committed = time.perf_counter()
        assert int((await mined)["blockNumber"], 16) == block
        while block not in announced:
            assert stamps_in.poll(10), f"block {block} was never announced"
            number, at = stamps_in.recv()
            announced[number] = at
        if i >= 0:
            latencies.append((committed - announced[block]) * 1000)
        await asyncio.sleep(0.05)
    stamper.kill()
    stop.set()
    await task
    await heads.stop()
    await watcher.close()
    await rpc.aclose()
    await db.dispose()
    return latencies


def backfill_process(settings: Settings, deployment: Deployment) -> tuple[int, float, float, float]:
    """The backfill in a process of its own, set up as `openpay run indexer` sets itself up,
    so its peak RSS is the indexer's. Also returns the CPU seconds it used."""
    tune_gc()
    before = resource.getrusage(resource.RUSAGE_SELF)
    count, elapsed = asyncio.run(backfill(settings, deployment))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return count, elapsed, after.ru_maxrss / 1024, cpu


def cpu_seconds(pid: int | None) -> float:
    """CPU a process and its reaped children used (PostgreSQL's backends exit into the postmaster)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def postmaster_pid(pg: EmbeddedPostgres | None) -> int | None:
    try:
        return int((pg.pgdata / "postmaster.pid").read_text().split()[0]) if pg else None
    except (OSError, ValueError, IndexError):
        return None


def decode_ceiling(rpc: SyncRpcClient, deployment: Deployment) -> tuple[int, float]:
    logs = rpc.request("eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest",
                                        "address": [deployment.gateway, deployment.event_emitter]}])
    started = time.perf_counter()
    lines, _ = decode_rows(deployment.chain_id, logs, 10**12)
    return len(lines), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--pays", type=int, default=500)
    parser.add_argument("--live-rounds", type=int, default=100)
    parser.add_argument("--live-events", type=int, default=1_000)
    parser.add_argument("--live-warmup", type=int, default=3)
    parser.add_argument("--rpc-url")
    parser.add_argument("--deployment", type=Path)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="openpay-bench-"))
    servers: list[EmbeddedPostgres | EmbeddedAnvil] = []
    pg: EmbeddedPostgres | None = None
    anvil: EmbeddedAnvil | None = None
    if args.database_url:
        database_url = args.database_url
    else:
        pg = EmbeddedPostgres(tmp / "pg", free_port())
        pg.start()
        servers.append(pg)
        database_url = pg.url
    if args.rpc_url:
        url = args.rpc_url
    else:
        anvil = EmbeddedAnvil(None, free_port(), chain_id=31337)
        anvil.start()
        servers.append(anvil)
        url = anvil.url
    try:
        with SyncRpcClient(url, timeout=300) as sync_rpc:
            if args.deployment:
                deployment = Deployment.load(args.deployment)
            else:
                started = time.perf_counter()
                deployment = prepare_chain(sync_rpc, url, args.events, args.pays)
                print(f"chain prepared: {args.events:,} events in {time.perf_counter() - started:.1f}s")
            settings = Settings(_env_file=None, database_url=database_url, rpc_url=url,  # type: ignore[call-arg]
                                chain_id=deployment.chain_id, indexer_confirmations=0, log_json=False,
                                log_level="WARNING")
            upgrade(settings)
            pg_pid = postmaster_pid(pg)
            anvil_pid = anvil.process.popen.pid if anvil and anvil.process and anvil.process.popen else None
            pg_cpu, anvil_cpu = cpu_seconds(pg_pid), cpu_seconds(anvil_pid)
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                count, elapsed, rss_mb, cpu = pool.submit(backfill_process, settings, deployment).result()
            pg_cpu, anvil_cpu = cpu_seconds(pg_pid) - pg_cpu, cpu_seconds(anvil_pid) - anvil_cpu
            print(f"backfill: {count:,} events in {elapsed:.2f}s = {count / elapsed:,.0f} events/s end to end "
                  f"(fetch, decode, COPY, handlers, cursor); peak RSS {rss_mb:.0f} MB")
            print(f"  CPU seconds: indexer {cpu:.2f}" + (f", PostgreSQL {pg_cpu:.2f}" if pg_pid else "")
                  + (f", anvil {anvil_cpu:.2f}" if anvil_pid else "") + f"; load average {os.getloadavg()[0]:.1f}")
            decoded, decode_s = decode_ceiling(sync_rpc, deployment)
            print(f"decode only: {decoded:,} events in {decode_s:.2f}s = {decoded / decode_s:,.0f} events/s")
            tune_gc()
            latencies = asyncio.run(live(settings, deployment, sync_rpc, args.live_rounds, args.live_events,
                                         args.live_warmup))
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(f"live: block of {args.live_events:,} events announced -> committed: "
                  f"p50 {statistics.median(latencies):.0f} ms,"
                  f" p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms over {len(latencies)} blocks"
                  f" (after {args.live_warmup} unmeasured)")
    finally:
        for server in reversed(servers):
            server.stop()


if __name__ == "__main__":
    main()
