"""How domains react to chain events: the contract between the indexer and ``node/``.

A handler sees events in three moments, each inside the indexer's batch transaction
(with the cursor advance and any outbox messages):

- ``seen``: the log is in a block at the tip, not final yet (may still be reorged away);
- ``final``: the block is final; effects here are never undone;
- ``reverted``: a reorg dropped the block before it became final: undo what ``seen`` did.

- ``final_on_arrival``: the log arrived in a block that is already final (a backfill, or a
  chain with no confirmation depth): ``seen`` and ``final`` at once. The default calls
  ``seen`` then ``final``; a handler that does the same lookups in both overrides it to do
  them once.

A handler may also ``prepare`` a batch: pure computation on its events, no database (rows to
write, sums), which the indexer runs ahead, while the previous batch is being written, and
hands back to ``final_on_arrival`` as ``prepared`` (None when it was not run, e.g. for a
repeated range whose events were filtered).

Handlers get whole batches (in chain order) so they can aggregate: the indexer's
throughput depends on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from chain.events import ChainEvent


@dataclass(frozen=True)
class ChainScope:
    """The chain and our contracts' addresses (lowercase), as handlers compare them."""

    chain_id: int
    gateway: str
    subscriptions: str
    oracle: str
    token: str


class ChainHandler:
    """Base with no-op moments; subclasses set ``events`` and override what they need."""

    name: ClassVar[str] = "handler"
    events: ClassVar[tuple[type[ChainEvent], ...]] = ()

    async def seen(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        return None

    async def final(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        return None

    async def reverted(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        return None

    def prepare(self, scope: ChainScope, events: Sequence[ChainEvent]) -> object | None:
        return None

    async def final_on_arrival(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent],
                               prepared: object | None = None) -> None:
        await self.seen(session, scope, events)
        await self.final(session, scope, events)
