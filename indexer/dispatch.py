"""Event type -> the domains' handlers, called with whole batches in chain order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from chain.events import ChainEvent
from node.indexing.handlers import ChainHandler, ChainScope


@dataclass
class PreparedBatch:
    """A batch split per handler, with what each handler's ``prepare`` made of its part."""

    events: Sequence[ChainEvent]
    parts: list[list[ChainEvent]]
    results: list[object | None]


class Dispatcher:
    def __init__(self, handlers: Sequence[ChainHandler]) -> None:
        self.handlers = list(handlers)
        # exact types: events are final dataclasses, no subclasses
        self._wanted = [frozenset(h.events) for h in self.handlers]

    def _split(self, events: Sequence[ChainEvent]) -> list[list[ChainEvent]]:
        """Each handler's events, in the order given (a batch is usually one event type)."""
        by_type: dict[type[ChainEvent], list[ChainEvent]] = {}
        for e in events:
            by_type.setdefault(type(e), []).append(e)
        mine: list[list[ChainEvent]] = []
        for wanted in self._wanted:
            groups = [group for t, group in by_type.items() if t in wanted]
            if len(groups) <= 1:
                mine.append(groups[0] if groups else [])
            else:
                mine.append([e for e in events if type(e) in wanted])
        return mine

    async def seen(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        for handler, mine in zip(self.handlers, self._split(events), strict=True):
            if mine:
                await handler.seen(session, scope, mine)

    async def final(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        for handler, mine in zip(self.handlers, self._split(events), strict=True):
            if mine:
                await handler.final(session, scope, mine)

    def prepare(self, scope: ChainScope, events: Sequence[ChainEvent]) -> PreparedBatch:
        """The handlers' pure work on a batch, done ahead (no database)."""
        parts = self._split(events)
        return PreparedBatch(events, parts, [handler.prepare(scope, mine) if mine else None
                                             for handler, mine in zip(self.handlers, parts, strict=True)])

    async def final_on_arrival(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent],
                               prepared: PreparedBatch | None = None) -> None:
        """Events of blocks that were final when they arrived: ``seen`` and ``final`` at once.
        ``prepared`` is used only if it was made of exactly these events."""
        if prepared is not None and prepared.events is not events:
            prepared = None
        parts = prepared.parts if prepared is not None else self._split(events)
        for i, (handler, mine) in enumerate(zip(self.handlers, parts, strict=True)):
            if mine:
                await handler.final_on_arrival(session, scope, mine,
                                               prepared.results[i] if prepared is not None else None)

    async def reverted(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        """Newest first, so each handler undoes in the reverse order it applied."""
        newest_first = list(reversed(events))
        for handler, mine in reversed(list(zip(self.handlers, self._split(newest_first), strict=True))):
            if mine:
                await handler.reverted(session, scope, mine)
