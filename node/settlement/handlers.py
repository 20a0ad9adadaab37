"""Merchant and treasury balances from final gateway events, to the wei."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from chain.events import (
    ChainEvent,
    Collected,
    DepositSwept,
    PaymentReceived,
    PayoutAddressSet,
    Refunded,
    SettlementInitiated,
    TreasuryWithdrawal,
    Withdrawal,
)
from node.indexing.copy import NULL, bytea, copy_new_rows
from node.indexing.handlers import ChainHandler, ChainScope
from node.settlement import repository
from node.settlement.repository import MerchantDelta, TreasuryDelta


@dataclass
class BalanceWork:
    """What a batch of final events does to balances and the ledger, computed without the database."""

    merchants: dict[tuple[bytes, str], MerchantDelta]
    treasury: dict[str, TreasuryDelta]
    lines: list[str]  # ledger rows as COPY text, priced already (payments)
    entries: list[dict[str, object]]  # ledger rows still to be priced (refunds, withdrawals)


class BalanceProjection(ChainHandler):
    """Only final events move balances, so a reorg never has to take money back."""

    name = "settlement.balances"
    events = (PaymentReceived, DepositSwept, Collected, Withdrawal, Refunded, SettlementInitiated,
              TreasuryWithdrawal)

    def prepare(self, scope: ChainScope, events: Sequence[ChainEvent]) -> BalanceWork:
        return BalanceWork(*balance_deltas(events, scope.gateway), *ledger_lines(scope.chain_id, events, scope.gateway))

    async def final_on_arrival(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent],
                               prepared: object | None = None) -> None:
        await self._write(session, scope, prepared if isinstance(prepared, BalanceWork) else
                          self.prepare(scope, events))

    async def final(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        await self._write(session, scope, self.prepare(scope, events))

    async def _write(self, session: AsyncSession, scope: ChainScope, work: BalanceWork) -> None:
        merchants, treasury, lines, entries = work.merchants, work.treasury, work.lines, work.entries
        await repository.apply_balance_deltas(session, scope.chain_id, merchants, treasury)
        if entries:
            # refunds and withdrawals carry no rate: priced the way every writer of the ledger does
            await repository.price_outflows(session, entries)
            lines.extend(entry_line(entry) for entry in entries)
        # one COPY per batch (a repeated batch's entries are skipped): the ledger is written once
        # per final event, so on a backfill it is as large as the logs
        await copy_new_rows(session, "settlement", "ledger_entries", LEDGER_COLUMNS, "".join(lines).encode())


def balance_deltas(events: Iterable[ChainEvent], gateway: str
                   ) -> tuple[dict[tuple[bytes, str], MerchantDelta], dict[str, TreasuryDelta]]:
    """What final gateway events do to balances (also what `openpay audit` recomputes with)."""
    merchants: defaultdict[tuple[bytes, str], MerchantDelta] = defaultdict(MerchantDelta)
    treasury: defaultdict[str, TreasuryDelta] = defaultdict(TreasuryDelta)
    # credits (most of the events) summed per merchant and token first: plain int additions
    credits: dict[tuple[bytes, str], list[int]] = {}
    for event in events:
        if event.address != gateway:
            continue
        if isinstance(event, PaymentReceived | Collected):
            gross, fee = event.amount, event.fee
        elif isinstance(event, DepositSwept):
            gross, fee = event.received, event.fee_charged
        else:
            _debit(merchants, treasury, event)
            continue
        key = (event.merchant_id, event.token)
        total = credits.get(key)
        if total is None:
            credits[key] = [gross, fee]
        else:
            total[0] += gross
            total[1] += fee
    for (merchant_key, token), (gross, fee) in credits.items():
        _credit(merchants[merchant_key, token], treasury[token], gross, fee)
    return dict(merchants), dict(treasury)


def _debit(merchants: defaultdict[tuple[bytes, str], MerchantDelta], treasury: defaultdict[str, TreasuryDelta],
           event: ChainEvent) -> None:
    if isinstance(event, Withdrawal):
        delta = merchants[event.merchant_id, event.token]
        delta.available -= event.amount
        delta.withdrawn += event.amount
    elif isinstance(event, Refunded):
        delta = merchants[event.merchant_id, event.token]
        delta.available -= event.amount
        delta.refunded += event.amount
    elif isinstance(event, SettlementInitiated):
        delta = merchants[event.merchant_id, event.token]
        delta.available -= event.amount
        delta.settled += event.amount
        treasury[event.token].available += event.amount
        treasury[event.token].settled += event.amount
    elif isinstance(event, TreasuryWithdrawal):
        treasury[event.token].available -= event.amount
        treasury[event.token].withdrawn += event.amount


def _credit(merchant: MerchantDelta, treasury: TreasuryDelta, gross: int, fee: int) -> None:
    merchant.available += gross - fee
    merchant.credited += gross - fee
    merchant.fees += fee
    treasury.available += fee
    treasury.fees += fee


def _cents(amount: int, rate: int) -> int:
    return amount * rate // 10**24  # base units x (LKR/USDT x 1e8) -> LKR cents


LEDGER_COLUMNS = ("chain_id", "block_hash", "log_index", "block_number", "tx_hash", "merchant_key", "token", "kind",
                  "amount", "fee", "rate", "fiat_cents", "fee_fiat_cents", "reference", "counterparty")


def ledger_entry(chain_id: int, event: ChainEvent) -> dict[str, object] | None:
    """The ledger row of a final gateway event (amount = change of the merchant's available)."""
    base: dict[str, object] = {"chain_id": chain_id, "block_hash": event.block_hash, "log_index": event.log_index,
                               "block_number": event.block_number, "tx_hash": event.transaction_hash,
                               "fee": 0, "rate": None, "fiat_cents": None, "fee_fiat_cents": None,
                               "reference": None, "counterparty": None}
    if isinstance(event, PaymentReceived | DepositSwept):
        gross, fee = (event.amount, event.fee) if isinstance(event, PaymentReceived) else (
            event.received, event.fee_charged)
        net = gross - fee
        return {**base, "merchant_key": event.merchant_id, "token": event.token,
                "kind": "PAYMENT" if isinstance(event, PaymentReceived) else "DEPOSIT", "amount": net, "fee": fee,
                "rate": event.rate, "fiat_cents": _cents(net, event.rate), "fee_fiat_cents": _cents(fee, event.rate),
                "reference": "0x" + event.payment_id.hex(),
                "counterparty": event.payer if isinstance(event, PaymentReceived) else event.deposit_address}
    if isinstance(event, Collected):
        return {**base, "merchant_key": event.merchant_id, "token": event.token, "kind": "SUBSCRIPTION_CHARGE",
                "amount": event.amount - event.fee, "fee": event.fee, "counterparty": event.collector}
    if isinstance(event, Withdrawal):
        return {**base, "merchant_key": event.merchant_id, "token": event.token, "kind": "WITHDRAWAL",
                "amount": -event.amount, "counterparty": event.to}
    if isinstance(event, Refunded):
        return {**base, "merchant_key": event.merchant_id, "token": event.token, "kind": "REFUND",
                "amount": -event.amount, "counterparty": event.to, "reference": "0x" + event.payment_id.hex()}
    if isinstance(event, SettlementInitiated):
        return {**base, "merchant_key": event.merchant_id, "token": event.token, "kind": "SETTLEMENT",
                "amount": -event.amount, "rate": event.rate, "fiat_cents": -event.fiat_amount,
                "reference": "0x" + event.settlement_ref.hex()}
    if isinstance(event, TreasuryWithdrawal):
        return {**base, "merchant_key": None, "token": event.token, "kind": "TREASURY_WITHDRAWAL",
                "amount": -event.amount, "counterparty": event.to}
    return None


def _text(value: object) -> str:
    if value is None:
        return NULL
    if isinstance(value, bytes):
        return bytea(value)
    return str(value)


def entry_line(entry: Mapping[str, object]) -> str:
    """A ledger entry as a line of COPY text (``LEDGER_COLUMNS``)."""
    return "\t".join([_text(entry[c]) for c in LEDGER_COLUMNS]) + "\n"


def ledger_lines(chain_id: int, events: Iterable[ChainEvent], gateway: str
                 ) -> tuple[list[str], list[dict[str, object]]]:
    """The ledger rows of final gateway events: payments as finished COPY lines (a backfill is
    made of them: no dict per row), the rest as entries still to be priced. ``ledger_entry`` is
    the definition of both (a test holds a payment's line equal to its entry's)."""
    lines: list[str] = []
    entries: list[dict[str, object]] = []
    merchants: dict[bytes, str] = {}  # a batch has few merchants: their bytea text made once
    for e in events:
        if e.address != gateway:
            continue
        if type(e) is PaymentReceived:
            net, fee, rate = e.amount - e.fee, e.fee, e.rate
            merchant = merchants.get(e.merchant_id)
            if merchant is None:
                merchant = merchants[e.merchant_id] = bytea(e.merchant_id)
            lines.append(
                f"{chain_id}\t{e.block_hash}\t{e.log_index}\t{e.block_number}\t{e.transaction_hash}\t"
                f"{merchant}\t{e.token}\tPAYMENT\t{net}\t{fee}\t{rate}\t{net * rate // 10**24}\t"
                f"{fee * rate // 10**24}\t0x{e.payment_id.hex()}\t{e.payer}\n"
            )
        elif (entry := ledger_entry(chain_id, e)) is not None:
            entries.append(entry)
    return lines, entries


class MoneyMovements(ChainHandler):
    """Final events that complete what the node sent: withdrawals COMPLETED, settlement batches
    SETTLED_ON_CHAIN, payout addresses ACTIVE, treasury withdrawals COMPLETED. Matched by the
    transaction hashes recorded before broadcasting (settlement.chain_sends)."""

    name = "settlement.movements"
    events = (Withdrawal, SettlementInitiated, PayoutAddressSet, TreasuryWithdrawal)

    async def final(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        ours = [e for e in events if e.address == scope.gateway]
        if not ours:
            return
        from node.settlement import movements

        await movements.apply_final(session, scope.chain_id, ours)
