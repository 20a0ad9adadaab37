"""One page of a listing and the listing's size, for the admin and merchant list routes."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


async def page(session: AsyncSession, query: Select[T], order_by: Any, *, offset: int, limit: int
               ) -> tuple[list[T], int]:
    """``query``'s rows in ``order_by`` from ``offset``, at most ``limit`` of them, and how many it has in all."""
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    if offset >= total:  # past the end: no query (and no OFFSET that overflows a bigint)
        return [], total
    rows = (await session.execute(query.order_by(order_by).offset(offset).limit(limit))).scalars()
    return list(rows), total
