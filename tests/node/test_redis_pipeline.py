"""The pipelined Redis connection of the API's hot path, against real Redis servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from node.infra.process import free_port
from node.infra.redis import EmbeddedRedis
from node.redis_pipeline import PipelinedRedis

_ECHO_ARGS = "return {KEYS[1], ARGV[1]}"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, to stop, restart and lock with a password."""
    server = EmbeddedRedis(tmp_path / "redis", free_port(), durable=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def pipelined(redis_server: EmbeddedRedis) -> AsyncIterator[PipelinedRedis]:
    client = PipelinedRedis(redis_server.url)
    yield client
    await client.aclose()


async def test_concurrent_callers_each_get_their_own_reply(pipelined: PipelinedRedis) -> None:
    replies = await asyncio.gather(*(pipelined.evalsha(_ECHO_ARGS, [f"k{i}"], [i]) for i in range(2000)))
    assert replies == [[f"k{i}".encode(), str(i).encode()] for i in range(2000)]


async def test_a_script_redis_forgot_is_sent_again(pipelined: PipelinedRedis, redis_server: EmbeddedRedis) -> None:
    assert await pipelined.evalsha(_ECHO_ARGS, ["a"], [1]) == [b"a", b"1"]
    await pipelined.call("SCRIPT", "FLUSH")
    assert await pipelined.evalsha(_ECHO_ARGS, ["b"], [2]) == [b"b", b"2"]


async def test_an_error_reply_fails_only_its_caller(pipelined: PipelinedRedis) -> None:
    await pipelined.call("SET", "pipeline:text", "not a number")
    bad, good = await asyncio.gather(pipelined.call("INCR", "pipeline:text"), pipelined.call("ECHO", "still here"),
                                     return_exceptions=True)
    assert isinstance(bad, ResponseError) and "not an integer" in str(bad)
    assert good == b"still here"


async def test_a_restarted_redis_is_reconnected_to(own_redis: EmbeddedRedis) -> None:
    client = PipelinedRedis(own_redis.url, timeout=2)
    try:
        assert await client.call("PING") == b"PONG"
        own_redis.stop()
        with pytest.raises(ConnectionError):
            await client.call("PING")
        with pytest.raises(ConnectionError):  # down: each call says so at once, none hangs
            await client.call("PING")
        own_redis.start()
        assert await client.call("PING") == b"PONG"
    finally:
        await client.aclose()


async def test_password_and_database_from_the_url(own_redis: EmbeddedRedis) -> None:
    admin = aioredis.from_url(own_redis.url)
    await admin.config_set("requirepass", "s3cret")  # type: ignore[no-untyped-call]
    await admin.aclose()
    wrong = PipelinedRedis(f"redis://:wrong@127.0.0.1:{own_redis.port}/0", timeout=2)
    with pytest.raises(ResponseError):
        await wrong.call("PING")
    await wrong.aclose()
    client = PipelinedRedis(f"redis://:s3cret@127.0.0.1:{own_redis.port}/3", timeout=2)
    try:
        await client.call("SET", "where", "db3")
        direct = aioredis.from_url(f"redis://:s3cret@127.0.0.1:{own_redis.port}/3")
        assert await direct.get("where") == b"db3"
        await direct.aclose()
    finally:
        await client.aclose()


async def test_a_server_that_never_answers_times_out_and_the_next_call_reconnects(
        redis_server: EmbeddedRedis) -> None:
    silent_connections: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent_connections.append(writer)

    silent = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout=0.3)
    try:
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(client.call("PING"), client.call("PING"), return_exceptions=True)
        assert all(isinstance(r, TimeoutError) for r in results), results
        assert asyncio.get_running_loop().time() - started < 2
        with pytest.raises(TimeoutError):
            await client.call("PING")
        assert len(silent_connections) == 2  # the timed-out connection was dropped, a new one opened
    finally:
        await client.aclose()
        silent.close()
        for writer in silent_connections:
            writer.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    client = PipelinedRedis(f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    with pytest.raises(ConnectionError, match="cannot connect to Redis"):
        await client.call("PING")
