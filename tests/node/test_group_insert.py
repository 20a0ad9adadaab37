"""Group insert: concurrent callers' rows share statements and commits, each caller hears its own fate."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import orjson
import pytest

from node.db.group_insert import GroupInsert
from node.infra.process import free_port
from node.resources import Resources

_TABLE = "public.group_insert_rows"


@pytest.fixture
async def pool(resources: Resources) -> asyncpg.Pool:
    pool = await resources.db.driver_pool()
    await pool.execute(f"CREATE TABLE IF NOT EXISTS {_TABLE} (tag uuid, n int PRIMARY KEY, note varchar(5), "
                       "xid bigint NOT NULL DEFAULT txid_current())")
    await pool.execute(f"TRUNCATE {_TABLE}")
    return pool


def _insert() -> GroupInsert:
    return GroupInsert(f"INSERT INTO {_TABLE} (tag, n, note) SELECT tag, n, note "
                       "FROM json_to_recordset($1::json) AS r(tag uuid, n int, note text)", max_rows=16)


def _row(tag: uuid.UUID, n: int, note: str) -> bytes:
    return orjson.dumps({"tag": tag, "n": n, "note": note})


async def test_concurrent_rows_share_transactions_and_all_commit(pool: asyncpg.Pool) -> None:
    tag = uuid.uuid4()
    insert = _insert()
    await asyncio.gather(*(insert.insert(pool, _row(tag, n, "ok")) for n in range(200)))
    rows = await pool.fetch(f"SELECT n, xid FROM {_TABLE} WHERE tag = $1", tag)
    assert sorted(r["n"] for r in rows) == list(range(200))
    # 200 callers arriving together: batches of at most 16, one transaction each
    transactions = {r["xid"] for r in rows}
    assert 200 / 16 <= len(transactions) < 50


async def test_a_lone_row_goes_at_once(pool: asyncpg.Pool) -> None:
    tag = uuid.uuid4()
    await asyncio.wait_for(_insert().insert(pool, _row(tag, 1, "ok")), 0.5)  # not held to fill a batch
    assert await pool.fetchval(f"SELECT count(*) FROM {_TABLE} WHERE tag = $1", tag) == 1


async def test_a_bad_row_fails_only_its_own_caller(pool: asyncpg.Pool) -> None:
    tag = uuid.uuid4()
    insert = _insert()
    await insert.insert(pool, _row(tag, 7, "first"))
    results = await asyncio.gather(
        *(insert.insert(pool, _row(tag, n, "ok")) for n in range(10, 15)),
        insert.insert(pool, _row(tag, 7, "dup")),  # primary key taken
        insert.insert(pool, _row(tag, 20, "too long")),  # varchar(5)
        *(insert.insert(pool, _row(tag, n, "ok")) for n in range(30, 35)),
        return_exceptions=True)
    assert [type(r) for r in results] == [type(None)] * 5 + [
        asyncpg.UniqueViolationError, asyncpg.StringDataRightTruncationError] + [type(None)] * 5
    stored = await pool.fetch(f"SELECT n, note FROM {_TABLE} WHERE tag = $1 ORDER BY n", tag)
    assert [(r["n"], r["note"]) for r in stored] == [(7, "first")] + [(n, "ok") for n in (*range(10, 15),
                                                                                          *range(30, 35))]


async def test_a_cancelled_caller_does_not_disturb_the_others(pool: asyncpg.Pool) -> None:
    tag = uuid.uuid4()
    insert = _insert()
    calls = [asyncio.ensure_future(insert.insert(pool, _row(tag, n, "ok"))) for n in range(8)]
    await asyncio.sleep(0)
    calls[3].cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert all(r is None for i, r in enumerate(results) if i != 3)
    # the cancelled caller's row may or may not have gone with its batch; no one else's was lost
    stored = {r["n"] for r in await pool.fetch(f"SELECT n FROM {_TABLE} WHERE tag = $1", tag)}
    assert set(range(8)) - {3} <= stored


async def test_an_unreachable_database_fails_every_waiting_caller() -> None:
    pool = await asyncpg.create_pool(f"postgresql://nobody@127.0.0.1:{free_port()}/none", min_size=0, max_size=2)
    try:
        insert = _insert()
        results = await asyncio.wait_for(asyncio.gather(
            *(insert.insert(pool, _row(uuid.uuid4(), n, "ok")) for n in range(5)), return_exceptions=True), 10)
        assert all(isinstance(r, OSError) for r in results), results
    finally:
        await pool.close()
