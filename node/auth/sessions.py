"""Rotating refresh tokens with reuse detection, shared by merchant users and admins.

A login starts a *family*. Each refresh marks the presented token used and issues
the next one in the family. Presenting a token that was already used (or revoked)
means it was copied: the whole family is revoked, so the thief and the victim
both have to log in again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.auth.tokens import new_opaque_token, token_hash
from node.errors import Unauthorized


class RefreshRow(Protocol):
    id: Any
    family_id: Any
    user_id: Any
    token_hash: Any
    expires_at: Any
    used_at: Any
    revoked_at: Any


class RefreshInvalid(Unauthorized):
    code = "UNAUTHORIZED"


class RefreshReused(Unauthorized):
    """Raised after the caller must revoke ``family_id`` in a transaction that commits."""

    code = "UNAUTHORIZED"

    def __init__(self, family_id: uuid.UUID, user_id: uuid.UUID) -> None:
        super().__init__("refresh token already used; all sessions of this login were revoked")
        self.family_id = family_id
        self.user_id = user_id


@dataclass(frozen=True)
class Rotated:
    user_id: uuid.UUID
    family_id: uuid.UUID
    refresh_token: str


async def issue(session: AsyncSession, model: type[Any], user_id: uuid.UUID, ttl_s: int,
                family_id: uuid.UUID | None = None) -> tuple[str, uuid.UUID]:
    token = new_opaque_token("rt")
    family = family_id or uuid.uuid4()
    await session.execute(insert(model).values(
        id=uuid.uuid4(), family_id=family, user_id=user_id, token_hash=token_hash(token),
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s),
    ))
    return token, family


async def rotate(session: AsyncSession, model: type[Any], token: str, ttl_s: int) -> Rotated:
    now = datetime.now(UTC)
    digest = token_hash(token)
    # spend the token atomically; only a token nobody spent before passes
    spent = (await session.execute(
        update(model)
        .where(model.token_hash == digest, model.used_at.is_(None), model.revoked_at.is_(None),
               model.expires_at > now)
        .values(used_at=now).returning(model.user_id, model.family_id)
    )).first()
    if spent is None:
        # no lock is held on the row here, so the caller can revoke the family in its own transaction
        row = (await session.execute(select(model).where(model.token_hash == digest))).scalar_one_or_none()
        # a spent token shown again was copied; a revoked (logged out) or expired one is just dead
        if row is not None and row.used_at is not None:
            raise RefreshReused(row.family_id, row.user_id)
        raise RefreshInvalid("invalid or expired refresh token")
    user_id, family_id = spent
    new_token, family = await issue(session, model, user_id, ttl_s, family_id)
    return Rotated(user_id, family, new_token)


async def owner(session: AsyncSession, model: type[Any], token: str) -> uuid.UUID | None:
    """The user a refresh token was issued to, whatever its state."""
    user_id: uuid.UUID | None = (await session.execute(
        select(model.user_id).where(model.token_hash == token_hash(token)))).scalar_one_or_none()
    return user_id


async def revoke_family(session: AsyncSession, model: type[Any], family_id: uuid.UUID) -> None:
    await session.execute(
        update(model).where(model.family_id == family_id, model.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


async def revoke_token(session: AsyncSession, model: type[Any], token: str) -> uuid.UUID | None:
    """Logout: revoke the token's family; returns its user, or None for an unknown token."""
    row = (await session.execute(
        select(model).where(model.token_hash == token_hash(token))
    )).scalar_one_or_none()
    if row is None:
        return None
    await revoke_family(session, model, row.family_id)
    user_id: uuid.UUID = row.user_id
    return user_id


async def revoke_all(session: AsyncSession, model: type[Any], user_id: uuid.UUID) -> None:
    await session.execute(
        update(model).where(model.user_id == user_id, model.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
