"""Follows the chain: cursor, confirmations, reorgs. Each step commits the logs it
stored, what the domains' handlers did, their outbox messages and the cursor in ONE
transaction, so a crash at any line repeats or loses nothing."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from chain.client import RpcClient
from chain.errors import RpcError
from chain.events import DECODERS, ChainEvent, EventDecodeError
from indexer import metrics
from indexer.dispatch import Dispatcher, PreparedBatch
from indexer.fetcher import FetchedRange, LogFetcher
from indexer.heads import HeadWatcher
from indexer.leader import LeaderLock
from node.bus import announce
from node.db import Database
from node.indexing import repository
from node.indexing.handlers import ChainScope
from node.indexing.models import ChainLog

log = structlog.get_logger(__name__)


class FinalityViolated(Exception):
    """A reorg reached a block we held final: the confirmation policy is too short for this chain."""


@dataclass(frozen=True)
class FinalityPolicy:
    mode: str  # "tag" or "depth"
    confirmations: int

    async def finalized(self, rpc: RpcClient, head: int) -> int:
        if self.mode == "tag":
            with contextlib.suppress(RpcError):
                block = await rpc.request("eth_getBlockByNumber", ["finalized", False])
                if block:
                    return min(head, int(block["number"], 16))
        return head - self.confirmations


@dataclass
class Cursor:
    number: int
    hash: str | None
    finalized: int


def decode_rows(chain_id: int, logs: Sequence[dict[str, Any]], finalized: int
                ) -> tuple[list[str], list[ChainEvent]]:
    """Typed events of the logs we know, and their ``chain.logs`` rows as lines of COPY text
    (``repository.LOG_COLUMNS``; every value is a number, a hex string or a name: nothing to
    escape). Built in the decoding loop: no tuple per row."""
    lines: list[str] = []
    events: list[ChainEvent] = []
    decoders = DECODERS
    for raw in logs:
        topics = raw["topics"]
        decoder = decoders.get(topics[0]) if topics else None
        if decoder is None:
            continue
        try:
            event = decoder(raw)
        except (ValueError, TypeError, KeyError, IndexError, EventDecodeError) as exc:
            log.warning("skipping a log that does not fit its event", tx=raw.get("transactionHash"),
                        error=str(exc)[:200])
            continue
        events.append(event)
        number = event.block_number
        lines.append(f"{chain_id}\t{event.block_hash}\t{event.log_index}\t{number}\t{event.transaction_hash}\t"
                     f"{event.address}\t{{{','.join(topics)}}}\t{raw['data']}\t{type(event).__name__}\t"
                     f"{'t' if number <= finalized else 'f'}\n")
    return lines, events


@dataclass
class DecodedRange:
    """A fetched range decoded into events and the COPY text of its log rows; prepared while the
    previous range is written. The raw logs are not kept: a batch's memory is its events."""

    start: int
    end: int
    events: list[ChainEvent]
    payload: bytes
    counts: Counter[str]
    prepared: PreparedBatch | None = None  # the handlers' share, made ahead when all of it is final

    @classmethod
    async def of(cls, chain_id: int, fetched: FetchedRange, finalized: int, *, chunk: int = 250
                 ) -> DecodedRange:
        """Decodes in chunks, yielding to the event loop between them: when the range is
        decoded ahead of the writes, the batch being written resumes as soon as PostgreSQL
        answers instead of waiting for a whole range's decoding."""
        events: list[ChainEvent] = []
        lines: list[str] = []
        logs = fetched.logs
        for i in range(0, len(logs), chunk):
            if i:
                await asyncio.sleep(0)
            chunk_lines, decoded = decode_rows(chain_id, logs[i:i + chunk], finalized)
            events.extend(decoded)
            lines.extend(chunk_lines)
        return cls(fetched.start, fetched.end, events, "".join(lines).encode(),
                   Counter(type(e).__name__ for e in events))


def stored_events(rows: Sequence[ChainLog]) -> list[ChainEvent]:
    return [
        DECODERS[row.topics[0]]({
            "address": row.address, "blockNumber": hex(row.block_number), "blockHash": row.block_hash,
            "transactionHash": row.transaction_hash, "logIndex": hex(row.log_index), "topics": row.topics,
            "data": row.data,
        })
        for row in rows
    ]


@dataclass
class ReadAhead:
    """A range being fetched and decoded ahead of the writes; ``end`` is known once fetched."""

    start: int
    task: asyncio.Task[tuple[DecodedRange, dict[str, Any]]]
    end: int | None = None


class Follower:
    def __init__(
        self, db: Database, rpc: RpcClient, fetcher: LogFetcher, dispatcher: Dispatcher, scope: ChainScope,
        policy: FinalityPolicy, *, start_block: int, live_blocks: int = 100, poll_interval: float = 0.5,
        leader: LeaderLock | None = None, heads: HeadWatcher | None = None, prefetch_depth: int = 2,
    ) -> None:
        self.db = db
        self.rpc = rpc
        self.fetcher = fetcher
        self.dispatcher = dispatcher
        self.scope = scope
        self.chain_id = scope.chain_id
        self.policy = policy
        self.start_block = start_block
        self.live_blocks = live_blocks
        self.poll_interval = poll_interval
        self.leader = leader
        self.heads = heads
        # ranges fetched and decoded ahead of the writes, in chain order
        self._ahead: collections.deque[ReadAhead] = collections.deque()
        # ranges being written by tasks of their own (backfill): the older one, the newer one
        self._writing: tuple[asyncio.Future[None] | None, asyncio.Future[None] | None] = (None, None)
        self.prefetch_depth = prefetch_depth
        # the leader is the cursor's only writer: after the first read it is known without a query
        self._cursor: Cursor | None = None
        self._pruned_below = 0
        # the highest block holding a pending (not yet final) log: -1 none, None not known. Lets
        # a step skip the promotion query when nothing can be promoted (every block at the tip
        # of a chain whose logs arrive final)
        self._pending_top: int | None = None
        # the highest block with a stored log (None: not known): a range above it cannot repeat a
        # stored log, so its COPY needs no savepoint to fall back on
        self._stored_top: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Steps until ``stop``; an unreachable or misbehaving RPC is waited out (each step is
        one transaction, so a failed step left nothing behind)."""
        failures = 0
        try:
            while not stop.is_set():
                try:
                    progressed = await self.step()
                    failures = 0
                except (RpcError, KeyError, TypeError, ValueError) as exc:
                    failures += 1
                    self._cancel_prefetch()
                    metrics.RPC_ERRORS.labels(type(exc).__name__).inc()
                    delay = min(30.0, 0.1 * 2 ** min(failures, 9))
                    log.warning("indexer step failed; retrying", error=str(exc)[:200], retry_in=delay)
                    progressed = False
                    await _sleep_or_stop(stop, delay)
                    continue
                if not progressed:
                    await self._wait_for_block(stop)
        finally:
            self._cancel_prefetch()
            with contextlib.suppress(Exception):
                await self._drain()

    async def _wait_for_block(self, stop: asyncio.Event) -> None:
        if self.heads is None:
            await _sleep_or_stop(stop, self.poll_interval)
            return
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.heads.new_head.wait())]
        try:
            await asyncio.wait(waits, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def cursor(self) -> Cursor:
        if self._cursor is not None:
            return self._cursor
        async with self.db.unit_of_work() as session:
            row = await repository.get_cursor(session, self.chain_id)
            self._pending_top = await repository.highest_pending_block(session, self.chain_id)
            self._stored_top = await repository.highest_stored_block(session, self.chain_id)
        if row is None:
            return Cursor(self.start_block - 1, None, self.start_block - 1)
        self._cursor = Cursor(row.block_number, row.block_hash, row.finalized_number)
        return self._cursor

    async def step(self) -> bool:
        """One unit of progress; False when there was nothing to do."""
        try:
            return await self._step()
        except BaseException as exc:
            writes, self._writing = self._writes(), (None, None)
            if isinstance(exc, Exception):
                await asyncio.gather(*writes, return_exceptions=True)  # they commit or fail on their own
            else:
                for write in writes:
                    write.cancel()
            self._cursor = None  # whatever failed may not have committed: read it again
            self._pending_top = None
            self._stored_top = None
            raise

    async def _step(self) -> bool:
        announced = None
        if self.heads is not None:
            # cleared before reading the head: a block announced from here on ends the next wait
            self.heads.new_head.clear()
            announced = self.heads.take_header()
        cursor = await self.cursor()
        if announced is not None and int(announced["number"], 16) > cursor.number:
            latest = announced  # the block just announced over WebSocket: no need to ask for it
        else:
            latest = await self.rpc.request("eth_getBlockByNumber", ["latest", False])
        head = int(latest["number"], 16)
        finalized = min(head, await self.policy.finalized(self.rpc, head))
        metrics.HEAD.set(head)
        metrics.LAG_BLOCKS.set(max(0, head - cursor.number))
        start = cursor.number + 1
        if cursor.number >= head or finalized - start < self.live_blocks:
            await self._drain()  # what follows reads what the backfill wrote
        if cursor.number >= head:
            if cursor.hash and (latest["hash"] != cursor.hash if cursor.number == head
                                else await self._tip_replaced(cursor, head)):
                await self._reorg(cursor, head, finalized)
                return True
            if finalized > cursor.finalized:
                async with self.db.unit_of_work() as session:
                    await self._check_leader()
                    await self._promote(session, cursor.finalized, finalized)
                    await repository.save_cursor(session, self.chain_id, number=cursor.number,
                                                 block_hash=cursor.hash or "", finalized=finalized, head=head)
                self._cursor = Cursor(cursor.number, cursor.hash, finalized)
                metrics.FINALIZED.set(finalized)
            return False
        if finalized - start >= self.live_blocks:
            await self._backfill(cursor, start, finalized, head)
        else:
            await self._follow_tip(cursor, start, head, finalized, latest)
        return True

    async def _tip_replaced(self, cursor: Cursor, head: int) -> bool:
        """At (or past) the head: is the block we stopped at still the node's?"""
        block = await self.rpc.request("eth_getBlockByNumber", [hex(min(head, cursor.number)), False])
        if block is None:
            return True
        if head >= cursor.number:
            return bool(block["hash"] != cursor.hash)
        async with self.db.unit_of_work() as session:
            stored = await repository.stored_block_hashes(session, self.chain_id, head, head)
        return bool(stored.get(head) != block["hash"])

    # ------------------------------------------------------------------ backfill (final blocks)

    async def _fetch_final(self, start: int, limit: int) -> tuple[DecodedRange, dict[str, Any]]:
        """Blocks ``start..`` (final: at most ``limit``), decoded; runs ahead of the writes."""
        fetched, header = await asyncio.gather(
            self.fetcher.fetch(start, limit),
            # the header of the range's end, asked for with the logs; the fetcher may stop short
            # of ``limit`` (range limits), then the end's header is fetched below
            self.rpc.request("eth_getBlockByNumber", [hex(min(limit, start + self.fetcher.span - 1)), False]),
        )
        # the node can serve the next range while this one is decoded and the earlier ones written
        for ahead in self._ahead:
            if ahead.start == start:
                ahead.end = fetched.end
        self._fetch_ahead(fetched.end + 1, limit)
        if header is None or int(header["number"], 16) != fetched.end:
            header = await self.rpc.request("eth_getBlockByNumber", [hex(fetched.end), False])
        decoded = await DecodedRange.of(self.chain_id, fetched, limit)
        await asyncio.sleep(0)
        decoded.prepared = self.dispatcher.prepare(self.scope, decoded.events)
        return decoded, header

    def _fetch_ahead(self, start: int, limit: int) -> None:
        """Starts reading ``start..`` ahead, unless ``prefetch_depth`` ranges wait already (each holds
        a decoded batch in memory) or it is being read."""
        if start > limit or len(self._ahead) >= self.prefetch_depth or any(a.start == start for a in self._ahead):
            return
        # the task first runs once this returns, when its entry is in the deque
        self._ahead.append(ReadAhead(start, asyncio.ensure_future(self._fetch_final(start, limit))))

    def _cancel_prefetch(self) -> None:
        while self._ahead:
            task = self._ahead.popleft().task
            task.cancel()
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a failed read ahead is not worth a warning

    async def _backfill(self, cursor: Cursor, start: int, finalized: int, head: int) -> None:
        decoded: DecodedRange | None = None
        if self._ahead and self._ahead[0].start == start:
            decoded, header = await self._ahead.popleft().task
            if decoded.end > finalized:
                decoded = None  # the node's finality went back since it was fetched: fetch again
                self._cancel_prefetch()
        else:
            self._cancel_prefetch()
        if decoded is None:
            decoded, header = await self._fetch_final(start, finalized)
        end = decoded.end
        # keep reading ahead while this range is written (a range starts the next as soon as its
        # own end is known; this carries on where the depth stopped that)
        last_end = self._ahead[-1].end if self._ahead else end
        if last_end is not None:
            self._fetch_ahead(last_end + 1, finalized)
        # the range is written by a task of its own: its logs' COPY overlaps the previous range's
        # handlers and commit (two transactions at most; each commits after the one before)
        older, previous = self._writing
        if older is not None:
            await older  # raises what it raised; `step` then waits for the rest and starts over
        write = asyncio.ensure_future(self._write(decoded, header, cursor.finalized, finalized, head, previous))
        self._writing = (previous, write)
        self._cursor = Cursor(end, header["hash"], finalized)

    async def _write(self, decoded: DecodedRange, header: dict[str, Any], previous_finalized: int, finalized: int,
                     head: int, previous: asyncio.Future[None] | None) -> None:
        async with self.db.unit_of_work() as session:
            await self._check_leader()
            await self._apply(session, decoded, [header], previous_finalized, finalized, head, end=decoded.end,
                              end_hash=header["hash"], after=previous, pipelined=True)

    def _writes(self) -> list[asyncio.Future[None]]:
        return [t for t in self._writing if t is not None]

    async def _drain(self) -> None:
        """Waits until every range being written has committed; raises what a write raised."""
        writes, self._writing = self._writes(), (None, None)
        for result in await asyncio.gather(*writes, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    # ------------------------------------------------------------------ the tip (may reorg)

    async def _headers(self, start: int, end: int) -> list[dict[str, Any]]:
        calls = [("eth_getBlockByNumber", [hex(n), False]) for n in range(start, end + 1)]
        headers = await self.rpc.batch(calls)
        return [h for h in headers if h is not None]

    async def _follow_tip(self, cursor: Cursor, start: int, head: int, finalized: int,
                          latest: dict[str, Any]) -> None:
        end = min(head, start + self.live_blocks - 1)
        if start == head:
            # the usual case at the tip: one new block, whose header we already have
            headers = [latest]
            logs = self.fetcher.collect(await self.rpc.batch(await self.fetcher.calls(start, end)))
            fetched = FetchedRange(start, end, logs)
        else:
            headers = await self._headers(start, end)
            fetched = None
        if not headers:
            return
        if cursor.hash and headers[0]["parentHash"] != cursor.hash:
            await self._reorg(cursor, head, finalized)
            return
        if not _linked(headers):
            return  # the tip moved while we read it: read again
        if fetched is None:
            fetched = await self.fetcher.fetch(start, int(headers[-1]["number"], 16))
        headers = headers[: fetched.end - start + 1]
        if not _logs_match(fetched.logs, headers):
            return
        decoded = await DecodedRange.of(self.chain_id, fetched, finalized)
        async with self.db.unit_of_work() as session:
            await self._check_leader()
            await self._apply(session, decoded, headers, cursor.finalized, finalized, head, end=fetched.end,
                              end_hash=headers[-1]["hash"])

    async def _reorg(self, cursor: Cursor, head: int, finalized: int) -> None:
        async with self.db.unit_of_work() as session:
            stored = await repository.stored_block_hashes(session, self.chain_id, cursor.finalized, cursor.number)
        fork = cursor.number
        canonical: dict[str, Any] | None = None
        while fork >= cursor.finalized:
            canonical = await self.rpc.request("eth_getBlockByNumber", [hex(fork), False])
            if canonical is not None and stored.get(fork) == canonical["hash"]:
                break
            fork -= 1
        if fork < cursor.finalized or canonical is None:
            raise FinalityViolated(
                f"chain {self.chain_id}: blocks up to {cursor.finalized} were final but the node's chain "
                f"differs there; raise the confirmation depth, then run `openpay indexer resync --from "
                f"{max(0, cursor.finalized - 1000)}`"
            )
        async with self.db.unit_of_work() as session:
            await self._check_leader()
            orphaned = await repository.pending_logs_after(session, self.chain_id, fork)
            if any(row.final for row in orphaned):
                raise FinalityViolated(f"chain {self.chain_id}: a reorg at block {fork} drops final logs")
            events = stored_events(orphaned)
            await self.dispatcher.reverted(session, self.scope, events)
            await repository.delete_after(session, self.chain_id, fork)
            undone = [{"event": type(e).__name__, "block": e.block_number, "tx": e.transaction_hash,
                       "logIndex": e.log_index} for e in events]
            await repository.record_reorg(session, self.chain_id, fork, cursor.number, undone)
            await announce(session, "chain.reorg", {
                "chainId": self.chain_id, "forkBlock": fork, "oldHead": cursor.number,
                "depth": cursor.number - fork, "undone": undone,
            }, key=f"chain:{self.chain_id}")
            # re-apply the canonical blocks in the same transaction
            end = min(head, fork + self.live_blocks)
            headers = await self._headers(fork + 1, end) if end > fork else []
            if headers and headers[0]["parentHash"] == canonical["hash"] and _linked(headers):
                fetched = await self.fetcher.fetch(fork + 1, int(headers[-1]["number"], 16))
                headers = headers[: fetched.end - fork]
                if not _logs_match(fetched.logs, headers):
                    raise RpcError("the chain moved during a reorg; retrying")
                await self._apply(session, await DecodedRange.of(self.chain_id, fetched, finalized), headers,
                                  cursor.finalized, finalized, head, end=fetched.end, end_hash=headers[-1]["hash"])
            else:
                await repository.save_cursor(session, self.chain_id, number=fork, block_hash=canonical["hash"],
                                             finalized=cursor.finalized, head=head)
                self._cursor = Cursor(fork, canonical["hash"], cursor.finalized)
        metrics.REORGS.inc()
        log.warning("reorg undone", fork_block=fork, old_head=cursor.number, depth=cursor.number - fork,
                    undone=len(events))

    # ------------------------------------------------------------------ one transaction

    async def _apply(self, session: AsyncSession, decoded: DecodedRange, headers: Sequence[dict[str, Any]],
                     previous_finalized: int, finalized: int, head: int, *, end: int, end_hash: str,
                     after: asyncio.Future[None] | None = None, pipelined: bool = False) -> None:
        """Stores the range's logs, runs the handlers and moves the cursor, in the caller's
        transaction. With ``after`` (the previous range's write, still committing), only the
        logs' COPY runs before it has committed: what the handlers read includes its effects,
        and if it failed this fails too."""
        # first through the session: it opens the transaction the COPY below joins
        await repository.save_blocks(session, self.chain_id, [h for h in headers if h is not None])
        events = decoded.events
        new_keys = await repository.insert_logs(
            session, decoded.payload, unseen=self._stored_top is not None and decoded.start > self._stored_top)
        if events:
            top = events[-1].block_number
            if self._stored_top is not None:
                self._stored_top = max(self._stored_top, top)
            if top > finalized and self._pending_top is not None:
                self._pending_top = max(self._pending_top, top)
        if after is not None:
            await after
        # what became final since the last step first: handlers see the chain in order
        await self._promote(session, previous_finalized, finalized)
        if new_keys is not None:
            events = [e for e in events if (e.block_hash, e.log_index) in new_keys]
        # events are in chain order: those already final come first
        split = len(events)
        while split > 0 and events[split - 1].block_number > finalized:
            split -= 1
        if split:
            # the whole batch (the usual backfill case) is what was prepared ahead
            await self.dispatcher.final_on_arrival(session, self.scope,
                                                   events if split == len(events) else events[:split],
                                                   decoded.prepared)
        if split < len(events):
            await self.dispatcher.seen(session, self.scope, events[split:])
        if finalized - self._pruned_below >= 64:
            await repository.prune_blocks(session, self.chain_id, below=finalized)
            self._pruned_below = finalized
        await repository.save_cursor(session, self.chain_id, number=end, block_hash=end_hash,
                                     finalized=finalized, head=head)
        # takes effect when the caller's transaction commits; a failure clears it (see step). A
        # pipelined range set it when it was started (a later one may have been started since)
        if not pipelined:
            self._cursor = Cursor(end, end_hash, finalized)
        for name, count in decoded.counts.items():
            metrics.EVENTS.labels(name).inc(count)
        metrics.CURSOR.set(end)
        metrics.FINALIZED.set(finalized)
        if headers:
            metrics.LAG_SECONDS.set(max(0.0, time.time() - int(headers[-1]["timestamp"], 16)))

    async def _promote(self, session: AsyncSession, previous_finalized: int, finalized: int) -> None:
        """Pending logs of blocks that became final. Every log up to the cursor's finalized block
        is final already (same transaction as the cursor), so only that window is looked at."""
        if finalized <= previous_finalized or (self._pending_top is not None
                                                 and self._pending_top <= previous_finalized):
            return
        promoted = await repository.promote_final(session, self.chain_id, finalized, above=previous_finalized)
        if self._pending_top is not None and self._pending_top <= finalized:
            self._pending_top = -1
        if promoted:
            await self.dispatcher.final(session, self.scope, stored_events(promoted))

    async def _check_leader(self) -> None:
        if self.leader is not None:
            await self.leader.check()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _linked(headers: Sequence[dict[str, Any]]) -> bool:
    return all(b["parentHash"] == a["hash"] for a, b in itertools.pairwise(headers))


def _logs_match(logs: Sequence[dict[str, Any]], headers: Sequence[dict[str, Any]]) -> bool:
    hashes = {int(h["number"], 16): h["hash"] for h in headers}
    return all(hashes.get(int(lg["blockNumber"], 16)) == lg["blockHash"] for lg in logs)
