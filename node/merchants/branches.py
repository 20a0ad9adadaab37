"""Branches: CRUD with soft delete; per-branch defaults for payments and links created there."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin import audit
from node.auth.context import RequestMeta
from node.errors import NotFound, ValidationFailed
from node.merchants import repository as repo
from node.merchants.models import Branch

FIELDS = frozenset({"name", "description", "address", "city", "defaults"})


async def create(session: AsyncSession, merchant_id: uuid.UUID, values: dict[str, Any], *,
                 actor_id: uuid.UUID | None, meta: RequestMeta) -> Branch:
    if not (values.get("name") or "").strip():
        raise ValidationFailed("name: must not be empty")
    branch = (await session.execute(insert(Branch).values(
        id=uuid.uuid4(), merchant_id=merchant_id, **{k: v for k, v in values.items() if k in FIELDS},
    ).returning(Branch))).scalar_one()
    await audit.record(session, action="branch.created", actor_type="MERCHANT_USER", actor_id=actor_id,
                       merchant_id=merchant_id, resource_type="branch", resource_id=branch.id,
                       details={"name": branch.name}, meta=meta)
    return branch


async def get(session: AsyncSession, merchant_id: uuid.UUID, branch_id: uuid.UUID) -> Branch:
    branch = await repo.get_branch(session, merchant_id, branch_id)
    if branch is None:
        raise NotFound("branch not found")
    return branch


async def update(session: AsyncSession, merchant_id: uuid.UUID, branch_id: uuid.UUID, values: dict[str, Any], *,
                 actor_id: uuid.UUID | None, meta: RequestMeta) -> Branch:
    branch = await get(session, merchant_id, branch_id)
    if "name" in values and not (values["name"] or "").strip():
        raise ValidationFailed("name: must not be empty")
    changes = await repo.update_fields(session, branch, {k: v for k, v in values.items() if k in FIELDS})
    if changes:
        await audit.record(session, action="branch.updated", actor_type="MERCHANT_USER", actor_id=actor_id,
                           merchant_id=merchant_id, resource_type="branch", resource_id=branch.id,
                           changes=changes, meta=meta)
    return branch


async def delete(session: AsyncSession, merchant_id: uuid.UUID, branch_id: uuid.UUID, *,
                 actor_id: uuid.UUID | None, meta: RequestMeta) -> None:
    branch = await get(session, merchant_id, branch_id)
    branch.deleted_at = datetime.now(UTC)
    await session.flush()
    await audit.record(session, action="branch.deleted", actor_type="MERCHANT_USER", actor_id=actor_id,
                       merchant_id=merchant_id, resource_type="branch", resource_id=branch.id, meta=meta)
