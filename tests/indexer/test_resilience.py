"""The indexer when things go wrong: killed mid-write, a flaky RPC, a leader that dies."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from chain.client import RpcClient
from node.infra.process import free_port
from node.resources import Resources
from tests.fixtures.indexing import IndexedChain

pytestmark = pytest.mark.slow

INDEXER = [sys.executable, "-m", "node.cli", "run", "indexer"]


async def _cursor(resources: Resources, chain_id: int) -> int:
    async with resources.db.unit_of_work() as session:
        value = (await session.execute(text("SELECT block_number FROM chain.cursors WHERE chain_id = :c"),
                                       {"c": chain_id})).scalar_one_or_none()
    return -1 if value is None else int(value)


async def _wait_cursor(resources: Resources, chain_id: int, at_least: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await _cursor(resources, chain_id) >= at_least:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"cursor did not reach {at_least} within {timeout}s")


def _head(chain: IndexedChain) -> int:
    return int(chain.chain.rpc.request("eth_blockNumber"), 16)


class TestCrashes:
    async def test_sigkill_twenty_times_during_backfill_loses_and_repeats_nothing(
        self, indexed_chain: IndexedChain, resources: Resources,
    ) -> None:
        indexed_chain.activity(80, seed=11)
        # one block (50 logs) per transaction: the backfill must outlast twenty lives of the indexer
        indexed_chain.emit_payments(20_000, per_tx=50)
        head = _head(indexed_chain)
        env = indexed_chain.indexer_env(OPENPAY_INDEXER_INITIAL_RANGE="1", OPENPAY_INDEXER_MAX_RANGE="1")
        rng = random.Random(5)
        kills = 0
        while kills < 20:
            before = await _cursor(resources, indexed_chain.chain_id)
            assert before < head, f"backfill finished after {kills} kills; make it longer"
            process = subprocess.Popen(INDEXER, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await _wait_cursor(resources, indexed_chain.chain_id, before + 1, timeout=60)
            await asyncio.sleep(rng.uniform(0, 0.15))
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            await indexed_chain.assert_db_equals_chain_up_to_cursor(resources.db)

        process = subprocess.Popen(INDEXER, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await _wait_cursor(resources, indexed_chain.chain_id, head, timeout=120)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
        await indexed_chain.assert_db_equals_chain(resources.db)
        assert len(await indexed_chain.db_logs(resources.db)) >= 20_000


class FlakyRpc:
    """A real HTTP proxy in front of anvil that misbehaves while ``flaky`` is set: drops
    connections, delays, answers 502s and JSON-RPC errors, truncates bodies, and says a log
    range is too large."""

    def __init__(self, upstream: str, seed: int = 3) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.flaky = True
        self.rng = random.Random(seed)
        self.faults: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._client = httpx.AsyncClient(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server
        self._server.close()
        await self._client.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)
                body = await reader.readexactly(length)
                if not await self._answer(body, writer):
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def _fault(self, body: bytes) -> str | None:
        if not self.flaky:
            return None
        roll = self.rng.random()
        if b"eth_getLogs" in body and self.rng.random() < 0.25:
            kind: str | None = "too_many"
        else:
            kind = ("drop" if roll < 0.12 else "delay" if roll < 0.22 else "http502" if roll < 0.30
                    else "rpc_error" if roll < 0.38 else "truncate" if roll < 0.44 else None)
        if kind:
            self.faults[kind] = self.faults.get(kind, 0) + 1
        return kind

    async def _answer(self, body: bytes, writer: asyncio.StreamWriter) -> bool:
        fault = self._fault(body)
        if fault == "drop":
            return False
        if fault == "delay":
            await asyncio.sleep(0.4)
        if fault == "http502":
            self._write(writer, b"bad gateway", status=b"502 Bad Gateway")
            return True
        if fault in ("rpc_error", "too_many"):
            request: Any = orjson.loads(body)
            first = request[0] if isinstance(request, list) else request
            error = ({"code": -32005, "message": "query returned more than 10000 results"} if fault == "too_many"
                     else {"code": -32603, "message": "internal error"})
            self._write(writer, orjson.dumps({"jsonrpc": "2.0", "id": first["id"], "error": error}))
            return True
        reply = await self._client.post(self.upstream, content=body, headers={"content-type": "application/json"})
        content = reply.content
        if fault == "truncate":
            content = content[: len(content) // 2]
        self._write(writer, content)
        return True

    @staticmethod
    def _write(writer: asyncio.StreamWriter, content: bytes, status: bytes = b"200 OK") -> None:
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(content)).encode() + b"\r\n\r\n" + content)


class TestBadRpc:
    async def test_a_flaky_rpc_loses_and_duplicates_nothing_and_indexing_resumes(
        self, indexed_chain: IndexedChain, resources: Resources,
    ) -> None:
        indexed_chain.activity(60, seed=21)
        indexed_chain.emit_payments(4_000, per_tx=200)
        proxy = FlakyRpc(indexed_chain.anvil.url)
        await proxy.start()
        rpc = RpcClient(proxy.url, timeout=2, retries=2)
        follower = indexed_chain.follower(resources.db, rpc, indexer_initial_range=4, indexer_max_range=16,
                                          indexer_target_logs=600)
        stop = asyncio.Event()
        task = asyncio.ensure_future(follower.run(stop))
        try:
            deadline = time.monotonic() + 30
            while sum(proxy.faults.values()) < 25 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert sum(proxy.faults.values()) >= 25, proxy.faults
            await indexed_chain.assert_db_equals_chain_up_to_cursor(resources.db)
            proxy.flaky = False  # the RPC recovers
            await _wait_cursor(resources, indexed_chain.chain_id, _head(indexed_chain), timeout=60)
        finally:
            stop.set()
            await task
            await rpc.aclose()
            await proxy.stop()
        await indexed_chain.assert_db_equals_chain(resources.db)
        assert {"drop", "http502", "rpc_error", "truncate", "too_many"} <= set(proxy.faults)


class TestFailover:
    async def test_the_standby_takes_over_within_ten_seconds(
        self, indexed_chain: IndexedChain, resources: Resources,
    ) -> None:
        indexed_chain.activity(20, seed=31)
        env = indexed_chain.indexer_env()
        leader = subprocess.Popen(INDEXER, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await _wait_cursor(resources, indexed_chain.chain_id, _head(indexed_chain), timeout=60)
        standby = subprocess.Popen(INDEXER, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(3)  # the standby is up and blocked on the lock
            assert standby.poll() is None
            leader.send_signal(signal.SIGKILL)
            leader.wait()
            killed_at = time.monotonic()
            indexed_chain.activity(5, seed=32)
            await _wait_cursor(resources, indexed_chain.chain_id, _head(indexed_chain), timeout=30)
            assert time.monotonic() - killed_at <= 10
        finally:
            for process in (leader, standby):
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(30)
        await indexed_chain.assert_db_equals_chain(resources.db)
