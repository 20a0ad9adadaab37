"""Merchant and treasury balances from final gateway events, to the wei."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from chain.events import (
    ChainEvent,
    Collected,
    DepositSwept,
    PaymentReceived,
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
        merchants: defaultdict[tuple[bytes, str], MerchantDelta] = defaultdict(MerchantDelta)
        treasury: defaultdict[str, TreasuryDelta] = defaultdict(TreasuryDelta)
        gateway = scope.gateway
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
        await repository.apply_balance_deltas(session, scope.chain_id, merchants, treasury)


def _credit(merchant: MerchantDelta, treasury: TreasuryDelta, gross: int, fee: int) -> None:
    merchant.available += gross - fee
    merchant.credited += gross - fee
    merchant.fees += fee
    treasury.available += fee
    treasury.fees += fee
