"""The chain handlers of every domain, in the order they run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from node.db import Database
from node.indexing.handlers import ChainHandler
from node.settlement.handlers import BalanceProjection, MoneyMovements


def chain_handlers() -> list[ChainHandler]:
    from node.payments.handlers import PaymentsProjection

    return [BalanceProjection(), MoneyMovements(), PaymentsProjection()]


DepositWatch = Callable[[], Awaitable[Sequence[str]]]


def deposit_watch(db: Database) -> DepositWatch | None:
    """The deposit addresses whose token transfers the indexer follows (payments adds them)."""
    from node.payments.handlers import DepositWatchCache

    return DepositWatchCache(db)
