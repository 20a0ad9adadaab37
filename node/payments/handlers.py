"""The indexer -> payments contract: receipts from ``PaymentReceived`` and token transfers to
deposit addresses, sweeps, refunds. Runs inside the indexer's batch transaction."""

from __future__ import annotations

import bisect
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import structlog
from sqlalchemy import ColumnElement, delete, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chain.client import RpcClient
from chain.errors import ChainError
from chain.events import ChainEvent, DepositSwept, PaymentReceived, Refunded, Transfer
from node.config import Settings
from node.db import Database
from node.db.base import TokenAmount
from node.db.bulk import driver_connection
from node.indexing.handlers import ChainHandler, ChainScope
from node.payments import onchain, states
from node.payments.models import Payment, Receipt
from node.payments.onchain import ChainNotConfigured
from node.payments.refunds import refund_completed

log = structlog.get_logger(__name__)


class PaymentsProjection(ChainHandler):
    name = "payments"
    events = (PaymentReceived, Transfer, DepositSwept, Refunded)

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        return self._settings

    def prepare(self, scope: ChainScope, events: Sequence[ChainEvent]) -> tuple[set[bytes], set[str]]:
        """The payment ids and deposit addresses a batch would credit: what its lookups ask for."""
        payment_ids: set[bytes] = set()
        deposits: set[str] = set()
        gateway, token = scope.gateway, scope.token
        for e in events:
            if e.address == gateway and type(e) is PaymentReceived:
                payment_ids.add(e.payment_id)
            elif e.address == token and type(e) is Transfer:
                deposits.add(e.to_address)
        return payment_ids, deposits

    async def _receipts(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent],
                        *, final: bool, keys: tuple[set[bytes], set[str]] | None = None) -> set[uuid.UUID]:
        """Stores the receipts of the batch's payments (final or not) and returns the payments
        touched. One lookup per kind for the whole batch; a batch that matches nothing (most of a
        backfill) costs those lookups and nothing else."""
        payment_ids, deposits = keys if keys is not None else self.prepare(scope, events)
        gateway, token = scope.gateway, scope.token
        if not payment_ids and not deposits:
            return set()
        driver = await driver_connection(session)
        targets: dict[bytes | str, Target] = {}
        if payment_ids:
            for pid, onchain_id, status, expire_at in await driver.fetch(
                    "SELECT id, onchain_id, status, expire_at FROM payments.payments"
                    " WHERE onchain_id = ANY($1::bytea[])", list(payment_ids)):
                targets[bytes(onchain_id)] = Target(pid, status, expire_at.timestamp())
        if deposits:
            for pid, address, status, expire_at in await driver.fetch(
                    "SELECT id, deposit_address, status, expire_at FROM payments.payments"
                    " WHERE deposit_address = ANY($1::text[])", list(deposits)):
                targets[address] = Target(pid, status, expire_at.timestamp())
        if not targets:
            return set()
        matched: list[tuple[ChainEvent, Target, str, str, int]] = []
        for e in events:
            if isinstance(e, PaymentReceived) and e.payment_id in targets and e.address == gateway:
                matched.append((e, targets[e.payment_id], "PAY", e.payer, e.amount))
            elif isinstance(e, Transfer) and e.to_address in targets and e.address == token:
                matched.append((e, targets[e.to_address], "TRANSFER", e.from_address, e.value))
        if not matched:
            return set()
        # the gateway's pay reverts after the intent's deadline: money it took was in time, whatever
        # the payment's expire_at says now (a simulated customer closes a payment early); only
        # transfers to a deposit address are judged by their block's time
        transfers = {e.block_number for e, _, kind, *_ in matched if kind == "TRANSFER"}
        times = await BlockTimes.load(driver, scope.chain_id, transfers) if transfers else BlockTimes({})
        undecided = {e.block_number for e, t, kind, *_ in matched if kind == "TRANSFER" and times.after(e, t) is None}
        if undecided:  # a backfill, a payment whose deadline falls inside the range: rare
            times.add(await self._fetch_headers(scope.chain_id, undecided))
        rows = []
        for e, t, kind, payer, amount in matched:
            after = False if kind == "PAY" else times.after(e, t)
            if after is None:  # the node did not answer: the payment's state when indexed
                after = t.status in ("expired", "failed", "late")
            rows.append(_row(scope, e, t.payment_id, kind, payer, amount, final, after))
        for chunk in _chunks(rows):
            stmt = insert(Receipt).values(chunk)
            if final:
                # a receipt stored when its block was seen becomes final; nothing else about it changes
                await session.execute(stmt.on_conflict_do_update(
                    index_elements=["chain_id", "block_hash", "log_index"], set_={"final": True}))
            else:
                await session.execute(stmt.on_conflict_do_nothing())
        return {r["payment_id"] for r in rows}  # type: ignore[misc]

    async def _fetch_headers(self, chain_id: int, numbers: set[int]) -> dict[int, tuple[str, int]]:
        """Headers the indexer did not store (a backfill keeps only each range's end), from the node."""
        try:
            chain = onchain.chain_of(self.settings, chain_id)
            async with RpcClient(chain.rpc_urls) as rpc:
                headers = await rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in sorted(numbers)])
        except (ChainError, ChainNotConfigured) as exc:
            log.warning("payments: no block headers for the deadline check", chain_id=chain_id, error=str(exc)[:200])
            return {}
        return {int(h["number"], 16): (h["hash"], int(h["timestamp"], 16)) for h in headers if h is not None}

    async def seen(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        touched = await self._receipts(session, scope, events, final=False)
        await states.recompute(session, self.settings, touched, head=_top(events))

    async def final(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        touched = await self._receipts(session, scope, events, final=True)
        await states.recompute(session, self.settings, touched, head=_top(events))
        await self._money_out(session, scope, events)

    async def final_on_arrival(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent],
                               prepared: object | None = None) -> None:
        """Seen and final at once (a backfill): the receipts go in final, one lookup, one recompute.
        The states are those ``seen`` then ``final`` would reach; the passing ``pending`` state of
        a block that was final when it arrived is not announced."""
        keys = prepared if isinstance(prepared, tuple) else None
        touched = await self._receipts(session, scope, events, final=True, keys=keys)
        await states.recompute(session, self.settings, touched, head=_top(events))
        await self._money_out(session, scope, events)

    async def _money_out(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        for e in events:
            if e.address != scope.gateway or type(e) is PaymentReceived:  # the bulk of a batch: nothing here
                continue
            if isinstance(e, DepositSwept):
                await session.execute(update(Payment).where(Payment.onchain_id == e.payment_id)
                                      .values(swept=Payment.swept + literal(e.received, TokenAmount), sweep_tx=None,
                                              sweep_at=None))
            elif isinstance(e, Refunded):
                await refund_completed(session, self.settings, e)

    async def reverted(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        keys = [(e.block_hash, e.log_index) for e in events if isinstance(e, PaymentReceived | Transfer)]
        if not keys:
            return
        gone = (await session.execute(delete(Receipt).where(
            Receipt.chain_id == scope.chain_id, tuple_(Receipt.block_hash, Receipt.log_index).in_(keys))
            .returning(Receipt.payment_id))).scalars().all()
        # back to what the remaining receipts give, announced as payment.reverted
        await states.recompute(session, self.settings, set(gone), reverted=True)


def _chunks(rows: list[dict[str, object]], size: int = 1_000) -> list[list[dict[str, object]]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def _row(scope: ChainScope, e: ChainEvent, pid: uuid.UUID, kind: str, payer: str, amount: int, final: bool,
         after_expiry: bool) -> dict[str, object]:
    return {"chain_id": scope.chain_id, "block_hash": e.block_hash, "log_index": e.log_index,
            "block_number": e.block_number, "tx_hash": e.transaction_hash, "payment_id": pid, "kind": kind,
            "payer": payer, "amount": amount, "final": final, "after_expiry": after_expiry}


def _top(events: Sequence[ChainEvent]) -> int | None:
    return events[-1].block_number if events else None  # chain order


class Target(NamedTuple):
    """A payment a batch credits, as its receipts need it."""

    payment_id: uuid.UUID
    status: str
    expire_at: float  # epoch seconds


class BlockTimes:
    """Timestamps of the blocks a batch credits payments in, from the headers the indexer stored
    in the same transaction (``chain.blocks``): whether money came after a payment's deadline is
    decided by its block, not by when it was indexed or whether the expiry job had run.

    A backfill stores only the header of each range's end; a block without its own header is
    bounded by the stored headers around it (on time if a later block is, late if an earlier one
    is). When neither decides, :meth:`PaymentsProjection._fetch_headers` asks the node for it."""

    def __init__(self, known: dict[int, tuple[str, int]]) -> None:
        self.known = known  # number -> (hash, timestamp)
        self.numbers = sorted(known)

    @classmethod
    async def load(cls, driver: Any, chain_id: int, numbers: set[int]) -> BlockTimes:
        rows = await driver.fetch(
            "SELECT number, hash, timestamp FROM chain.blocks WHERE chain_id = $1 AND (number = ANY($2::bigint[])"
            " OR number = (SELECT min(number) FROM chain.blocks WHERE chain_id = $1 AND number > $3)) ORDER BY number",
            chain_id, list(numbers), max(numbers))
        return cls({int(n): (h, int(ts)) for n, h, ts in rows})

    def add(self, headers: dict[int, tuple[str, int]]) -> None:
        self.known.update(headers)
        self.numbers = sorted(self.known)

    def after(self, e: ChainEvent, t: Target) -> bool | None:
        """Whether ``e``'s block is past ``t``'s deadline; None when the known headers cannot tell."""
        exact = self.known.get(e.block_number)
        if exact is not None and exact[0] == e.block_hash:
            return exact[1] > t.expire_at
        later = bisect.bisect_right(self.numbers, e.block_number)
        if later < len(self.numbers) and self.known[self.numbers[later]][1] <= t.expire_at:
            return False  # a later block was still in time
        earlier = bisect.bisect_left(self.numbers, e.block_number) - 1
        if earlier >= 0 and self.known[self.numbers[earlier]][1] > t.expire_at:
            return True
        return None


OPEN_STATES = ("initiated", "pending", "underpaid")
DEFAULT_LATE_WINDOW_S = 7 * 86_400.0


class DepositWatchCache:
    """The deposit addresses whose token transfers the indexer follows: those that can still
    receive money the node cares about. That is payments still open (money expected), payments
    whose deposit holds money not yet swept, and payments closed less than ``late_window_s``
    after their deadline (money that arrives late is held for the merchant as ``late``).

    The indexer asks on every fetch, so the answer is cached for ``ttl`` seconds, and a refresh
    reads only what the partial indexes on open and unswept payments answer. A payment seen open
    stays followed, from memory, until its late window ends; the closed payments still inside
    their window are read in full at start and every ``full_ttl`` seconds (default ``60 * ttl``),
    which also catches a payment that opened and closed between two refreshes."""

    def __init__(self, db: Database, ttl: float = 1.0, *, late_window_s: float = DEFAULT_LATE_WINDOW_S,
                 chain_id: int | None = None, full_ttl: float | None = None) -> None:
        self.db = db
        self.ttl = ttl
        self.full_ttl = 60 * ttl if full_ttl is None else full_ttl
        self.late_window_s = late_window_s
        self.chain_id = chain_id
        self._at = 0.0
        self._full_at: float | None = None
        self._until: dict[str, datetime] = {}  # address -> end of its late window
        self._unswept: set[str] = set()
        self._addresses: list[str] = []

    async def __call__(self) -> Sequence[str]:
        now = time.monotonic()
        if now - self._at >= self.ttl:
            full = self._full_at is None or now - self._full_at >= self.full_ttl
            await self._refresh(full=full)
            self._at = now
            if full:
                self._full_at = now
        return self._addresses

    def _where(self) -> list[ColumnElement[bool]]:
        return [] if self.chain_id is None else [Payment.chain_id == self.chain_id]

    async def _refresh(self, *, full: bool) -> None:
        window = timedelta(seconds=self.late_window_s)
        wall = datetime.now(UTC)
        async with self.db.unit_of_work() as session:
            if full:
                rows = await session.execute(select(Payment.deposit_address, Payment.expire_at).where(
                    *self._where(), Payment.status.not_in(OPEN_STATES), Payment.expire_at > wall - window))
                for address, expire_at in rows:
                    self._until[address] = max(self._until.get(address, expire_at + window), expire_at + window)
            opened = await session.execute(select(Payment.deposit_address, Payment.expire_at).where(
                *self._where(), Payment.status.in_(OPEN_STATES)))
            # an open payment is followed however old; once closed, for the window after its deadline
            for address, expire_at in opened:
                self._until[address] = max(expire_at, wall) + window
            self._unswept = set((await session.execute(select(Payment.deposit_address).where(
                *self._where(), Payment.deposited_final > Payment.swept))).scalars())
        self._until = {a: until for a, until in self._until.items() if until > wall}
        self._addresses = sorted(self._until.keys() | self._unswept)
