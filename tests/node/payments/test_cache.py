"""The payment service's per-process cache: one refresh at a time, the previous value meanwhile."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from node.payments import service


async def test_an_expired_value_is_refreshed_once_while_the_others_keep_the_previous_one() -> None:
    key = f"test:{uuid.uuid4()}"
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        await asyncio.sleep(0.05)
        return loads

    assert await service._cached(key, 60, load) == 1
    # expired (ttl 0): ten requests at once make one query; the nine others are not kept waiting
    results = await asyncio.gather(*(service._cached(key, 0, load) for _ in range(10)))
    assert loads == 2
    assert sorted(results) == [1] * 9 + [2]
    assert await service._cached(key, 60, load) == 2


async def test_a_failed_refresh_lets_the_next_request_try_again() -> None:
    key = f"test:{uuid.uuid4()}"

    async def broken() -> int:
        raise ConnectionError("database away")

    async def working() -> int:
        return 7

    with pytest.raises(ConnectionError):
        await service._cached(key, 0, broken)
    assert await service._cached(key, 0, working) == 7


async def test_values_of_merchants_not_seen_again_do_not_pile_up() -> None:
    """A long-running API process caches each merchant's risk counts and normal; one that stops
    creating payments leaves nothing behind for good once its values have expired."""
    prefix = f"test-gone:{uuid.uuid4()}:"

    async def load() -> int:
        return 1

    for n in range(20_000):
        await service._cached(f"{prefix}{n}", 0, load)
    assert sum(key.startswith(prefix) for key in service._cache) < 5_000
    # what is still fresh stays
    fresh = f"test-fresh:{uuid.uuid4()}"
    assert await service._cached(fresh, 60, load) == 1
    for n in range(20_000):
        await service._cached(f"{prefix}again:{n}", 0, load)
    assert fresh in service._cache


async def test_a_background_refresh_keeps_the_request_that_found_the_value_expired_from_waiting() -> None:
    key = f"test-background:{uuid.uuid4()}"
    loads, release = 0, asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        if loads > 1:
            await release.wait()  # a slow query
        return loads

    assert await service._cached(key, 0.05, load, in_background=True) == 1  # nothing to serve yet: waits
    await asyncio.sleep(0.06)
    # expired: answered at once with the previous value, the query runs on its own
    assert await asyncio.wait_for(service._cached(key, 0.05, load, in_background=True), 0.5) == 1
    assert await service._cached(key, 0.05, load, in_background=True) == 1 and loads == 2  # one query at a time
    release.set()
    for _ in range(100):
        if service._cache[key][1] == 2:
            break
        await asyncio.sleep(0.01)
    assert await service._cached(key, 60, load, in_background=True) == 2


async def test_a_failed_background_refresh_keeps_the_previous_value_and_is_tried_again() -> None:
    key = f"test-background-fail:{uuid.uuid4()}"
    answers: list[int | Exception] = [1, ConnectionError("database away"), 3]

    async def load() -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert await service._cached(key, 0.02, load, in_background=True) == 1
    await asyncio.sleep(0.03)
    assert await service._cached(key, 0.02, load, in_background=True) == 1  # the refresh fails behind it
    await asyncio.sleep(0.01)
    assert await service._cached(key, 0.02, load, in_background=True) == 1  # tried again, in the background
    for _ in range(100):
        if service._cache[key][1] == 3:
            break
        await asyncio.sleep(0.01)
    assert service._cache[key][1] == 3
