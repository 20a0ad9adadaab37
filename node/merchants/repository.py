"""All SQL of the merchants domain."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.db.paging import page
from node.merchants.models import ApiKey, Branch, Director, Document, Merchant, User


async def get_merchant(session: AsyncSession, merchant_id: uuid.UUID, *, for_update: bool = False) -> Merchant | None:
    query = select(Merchant).where(Merchant.id == merchant_id, Merchant.deleted_at.is_(None))
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def merchant_email_taken(session: AsyncSession, email: str) -> bool:
    merchant = await session.scalar(select(func.count()).select_from(Merchant).where(Merchant.email == email))
    user = await session.scalar(select(func.count()).select_from(User).where(User.email == email))
    return bool(merchant or user)


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


async def get_user(session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
    query = select(User).where(User.id == user_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


@dataclass(frozen=True)
class PortalCaller:
    user_id: uuid.UUID
    merchant_id: uuid.UUID
    role: str
    branch_id: uuid.UUID | None
    kyc_status: str


async def active_portal_caller(session: AsyncSession, user_id: uuid.UUID) -> PortalCaller | None:
    """The user with its merchant's state, if both are active: one round trip per portal request."""
    row = (await session.execute(
        select(User.id, User.merchant_id, User.role, User.branch_id, Merchant.kyc_status)
        .join(Merchant, Merchant.id == User.merchant_id)
        .where(User.id == user_id, User.is_active.is_(True), Merchant.status == "ACTIVE",
               Merchant.deleted_at.is_(None))
    )).first()
    return PortalCaller(*row) if row else None


@dataclass(frozen=True)
class KeyForAuth:
    id: uuid.UUID
    merchant_id: uuid.UUID
    mode: str
    hmac_key_sealed: str
    allowed_ips: list[str]
    kyc_status: str


async def usable_key(session: AsyncSession, key_id: str) -> KeyForAuth | None:
    """An unrevoked key of an ACTIVE merchant: the one query of HMAC authentication."""
    row = (await session.execute(
        select(ApiKey.id, ApiKey.merchant_id, ApiKey.mode, ApiKey.hmac_key, ApiKey.allowed_ips,
               Merchant.kyc_status)
        .join(Merchant, Merchant.id == ApiKey.merchant_id)
        .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None), Merchant.status == "ACTIVE",
               Merchant.deleted_at.is_(None))
    )).first()
    return KeyForAuth(row[0], row[1], row[2], row[3], list(row[4] or []), row[5]) if row else None


async def touch_key(session: AsyncSession, key_pk: uuid.UUID) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_pk).values(last_used_at=func.now()))


async def list_keys(session: AsyncSession, merchant_id: uuid.UUID) -> list[ApiKey]:
    return list((await session.execute(
        select(ApiKey).where(ApiKey.merchant_id == merchant_id).order_by(ApiKey.created_at.desc())
    )).scalars())


async def get_key(session: AsyncSession, merchant_id: uuid.UUID, key_pk: uuid.UUID) -> ApiKey | None:
    return (await session.execute(
        select(ApiKey).where(ApiKey.id == key_pk, ApiKey.merchant_id == merchant_id).with_for_update()
    )).scalar_one_or_none()


async def get_key_by_key_id(session: AsyncSession, key_id: str) -> ApiKey | None:
    return (await session.execute(select(ApiKey).where(ApiKey.key_id == key_id).with_for_update())
            ).scalar_one_or_none()


async def list_users(session: AsyncSession, merchant_id: uuid.UUID) -> list[User]:
    return list((await session.execute(
        select(User).where(User.merchant_id == merchant_id).order_by(User.created_at)
    )).scalars())


async def merchant_user(session: AsyncSession, merchant_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
    return (await session.execute(
        select(User).where(User.id == user_id, User.merchant_id == merchant_id).with_for_update()
    )).scalar_one_or_none()


async def count_active_admins(session: AsyncSession, merchant_id: uuid.UUID) -> int:
    return int(await session.scalar(
        select(func.count()).select_from(User).where(
            User.merchant_id == merchant_id, User.role == "ADMIN", User.is_active.is_(True))
    ) or 0)


async def list_branches(session: AsyncSession, merchant_id: uuid.UUID) -> list[Branch]:
    return list((await session.execute(
        select(Branch).where(Branch.merchant_id == merchant_id, Branch.deleted_at.is_(None))
        .order_by(Branch.created_at)
    )).scalars())


async def get_branch(session: AsyncSession, merchant_id: uuid.UUID, branch_id: uuid.UUID) -> Branch | None:
    return (await session.execute(
        select(Branch).where(Branch.id == branch_id, Branch.merchant_id == merchant_id,
                             Branch.deleted_at.is_(None))
    )).scalar_one_or_none()


async def list_directors(session: AsyncSession, merchant_id: uuid.UUID) -> list[Director]:
    return list((await session.execute(
        select(Director).where(Director.merchant_id == merchant_id).order_by(Director.created_at)
    )).scalars())


async def get_director(session: AsyncSession, merchant_id: uuid.UUID, director_id: uuid.UUID) -> Director | None:
    return (await session.execute(
        select(Director).where(Director.id == director_id, Director.merchant_id == merchant_id)
    )).scalar_one_or_none()


async def director_by_token(session: AsyncSession, token_hash: str) -> Director | None:
    return (await session.execute(
        select(Director).where(Director.token_hash == token_hash).with_for_update()
    )).scalar_one_or_none()


async def list_documents(session: AsyncSession, merchant_id: uuid.UUID) -> list[Document]:
    return list((await session.execute(
        select(Document).where(Document.merchant_id == merchant_id).order_by(Document.created_at)
    )).scalars())


async def get_document(session: AsyncSession, merchant_id: uuid.UUID, document_id: uuid.UUID) -> Document | None:
    return (await session.execute(
        select(Document).where(Document.id == document_id, Document.merchant_id == merchant_id)
    )).scalar_one_or_none()


async def list_merchants(
    session: AsyncSession, *, status: str | None = None, kyc_status: str | None = None,
    search: str | None = None, offset: int = 0, limit: int = 20,
) -> tuple[list[Merchant], int]:
    query = select(Merchant).where(Merchant.deleted_at.is_(None))
    if status:
        query = query.where(Merchant.status == status)
    if kyc_status:
        query = query.where(Merchant.kyc_status == kyc_status)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(Merchant.business_name.ilike(pattern) | Merchant.email.ilike(pattern))
    return await page(session, query, Merchant.created_at.desc(), offset=offset, limit=limit)


async def update_fields(session: AsyncSession, obj: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Apply ``values`` to a loaded row; returns {field: [old, new]} of what changed (for the audit log)."""
    changed: dict[str, Any] = {}
    for name, value in values.items():
        old = getattr(obj, name)
        if old != value:
            changed[name] = [_plain(old), _plain(value)]
            setattr(obj, name, value)
    await session.flush()
    return changed


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID | datetime):
        return str(value)
    return value
