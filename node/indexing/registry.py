"""The chain handlers of every domain, in the order they run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from node.config import Settings
from node.db import Database
from node.indexing.handlers import ChainHandler
from node.settlement.handlers import BalanceProjection, MoneyMovements


def chain_handlers() -> list[ChainHandler]:
    from node.payments.handlers import PaymentsProjection

    return [BalanceProjection(), MoneyMovements(), PaymentsProjection()]


DepositWatch = Callable[[], Awaitable[Sequence[str]]]


def deposit_watch(db: Database, settings: Settings, chain_id: int) -> DepositWatch:
    """The deposit addresses whose token transfers the indexer follows (payments decides which)."""
    from node.payments.handlers import DepositWatchCache

    return DepositWatchCache(db, late_window_s=settings.indexer_late_deposit_window_s, chain_id=chain_id)
