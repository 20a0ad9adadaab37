"""Merchant and treasury balances from final gateway events, to the wei."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

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
from node.indexing.handlers import ChainHandler, ChainScope
from node.settlement import repository
from node.settlement.repository import MerchantDelta, TreasuryDelta


class BalanceProjection(ChainHandler):
    """Only final events move balances, so a reorg never has to take money back."""

    name = "settlement.balances"
    events = (PaymentReceived, DepositSwept, Collected, Withdrawal, Refunded, SettlementInitiated,
              TreasuryWithdrawal)

    async def final(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        merchants, treasury = balance_deltas(events, scope.gateway)
        ledger = [entry for event in events if event.address == scope.gateway
                  and (entry := ledger_entry(scope.chain_id, event)) is not None]
        await repository.apply_balance_deltas(session, scope.chain_id, merchants, treasury)
        await repository.insert_ledger(session, ledger)


def balance_deltas(events: Iterable[ChainEvent], gateway: str
                   ) -> tuple[dict[tuple[bytes, str], MerchantDelta], dict[str, TreasuryDelta]]:
    """What final gateway events do to balances (also what `openpay audit` recomputes with)."""
    merchants: defaultdict[tuple[bytes, str], MerchantDelta] = defaultdict(MerchantDelta)
    treasury: defaultdict[str, TreasuryDelta] = defaultdict(TreasuryDelta)
    for event in events:
        if event.address != gateway:
            continue
        if isinstance(event, PaymentReceived):
            _credit(merchants[event.merchant_id, event.token], treasury[event.token], event.amount, event.fee)
        elif isinstance(event, DepositSwept):
            _credit(merchants[event.merchant_id, event.token], treasury[event.token], event.received,
                    event.fee_charged)
        elif isinstance(event, Collected):
            _credit(merchants[event.merchant_id, event.token], treasury[event.token], event.amount, event.fee)
        elif isinstance(event, Withdrawal):
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
    return dict(merchants), dict(treasury)


def _credit(merchant: MerchantDelta, treasury: TreasuryDelta, gross: int, fee: int) -> None:
    merchant.available += gross - fee
    merchant.credited += gross - fee
    merchant.fees += fee
    treasury.available += fee
    treasury.fees += fee


def _cents(amount: int, rate: int) -> int:
    return amount * rate // 10**24  # base units x (LKR/USDT x 1e8) -> LKR cents


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
