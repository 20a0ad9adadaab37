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


def deposit_watch(db: Database, settings: Settings | None = None, chain_id: int | None = None
                  ) -> DepositWatch | None:
    """The deposit addresses whose token transfers the indexer follows (payments decides which)."""
    from node.payments.handlers import DEFAULT_LATE_WINDOW_S, DepositWatchCache

    window = settings.indexer_late_deposit_window_s if settings is not None else DEFAULT_LATE_WINDOW_S
    return DepositWatchCache(db, late_window_s=window, chain_id=chain_id)
