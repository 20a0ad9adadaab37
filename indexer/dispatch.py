"""Event type -> the domains' handlers, called with whole batches in chain order."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from chain.events import ChainEvent
from node.indexing.handlers import ChainHandler, ChainScope


class Dispatcher:
    def __init__(self, handlers: Sequence[ChainHandler]) -> None:
        self.handlers = list(handlers)

    def _for(self, handler: ChainHandler, events: Sequence[ChainEvent]) -> list[ChainEvent]:
        wanted = frozenset(handler.events)  # exact types: events are final dataclasses, no subclasses
        return [e for e in events if type(e) in wanted]

    async def seen(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        for handler in self.handlers:
            if mine := self._for(handler, events):
                await handler.seen(session, scope, mine)

    async def final(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        for handler in self.handlers:
            if mine := self._for(handler, events):
                await handler.final(session, scope, mine)

    async def reverted(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        """Newest first, so each handler undoes in the reverse order it applied."""
        newest_first = list(reversed(events))
        for handler in reversed(self.handlers):
            if mine := self._for(handler, newest_first):
                await handler.reverted(session, scope, mine)
