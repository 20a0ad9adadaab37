"""Team: invite users by e-mail, change roles and branch scope, deactivate (the original had none)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin import audit
from node.auth import sessions
from node.auth.context import RequestMeta
from node.auth.passwords import check_policy, hash_password
from node.auth.principal import MERCHANT_ROLES
from node.config import Settings
from node.errors import Forbidden, NotFound, ValidationFailed
from node.merchants import accounts, service
from node.merchants import repository as repo
from node.merchants.emails import request_email
from node.merchants.errors import EmailTaken, InvalidToken
from node.merchants.models import RefreshToken, User

_UNSET: Any = object()


async def _check_branch(session: AsyncSession, merchant_id: uuid.UUID, branch_id: uuid.UUID | None) -> None:
    if branch_id is not None and await repo.get_branch(session, merchant_id, branch_id) is None:
        raise ValidationFailed("branchId: no such branch")


async def invite(session: AsyncSession, settings: Settings, merchant_id: uuid.UUID, *, email: str, name: str,
                 role: str, branch_id: uuid.UUID | None, invited_by: uuid.UUID | None, meta: RequestMeta) -> User:
    if role not in MERCHANT_ROLES:
        raise ValidationFailed(f"role: must be one of {', '.join(MERCHANT_ROLES)}")
    email = service.normalize_email(email)
    await _check_branch(session, merchant_id, branch_id)
    merchant = await service.get(session, merchant_id)
    if await repo.merchant_email_taken(session, email):
        raise EmailTaken("an account with this email already exists")
    try:
        async with session.begin_nested():
            user = (await session.execute(insert(User).values(
                id=uuid.uuid4(), merchant_id=merchant_id, email=email, name=name.strip()[:200] or email,
                role=role, branch_id=branch_id, is_active=True, password_hash=None,
            ).returning(User))).scalar_one()
    except IntegrityError:
        raise EmailTaken("an account with this email already exists") from None
    token = await accounts._new_one_time_token(session, user.id, "invite", settings.invite_ttl_s, "ui")
    inviter = await repo.get_user(session, invited_by) if invited_by else None
    await request_email(session, "user.invite", email, merchant_id=merchant_id, context={
        "name": user.name, "businessName": merchant.business_name, "role": role,
        "invitedBy": inviter.name if inviter else None, "token": token,
        "acceptUrl": f"{settings.portal_url}/accept-invite?token={token}",
        "expiresInDays": settings.invite_ttl_s // 86400,
    })
    await audit.record(session, action="user.invited", actor_type="MERCHANT_USER", actor_id=invited_by,
                       merchant_id=merchant_id, resource_type="user", resource_id=user.id,
                       details={"email": email, "role": role, "branchId": str(branch_id) if branch_id else None},
                       meta=meta)
    return user


async def accept_invite(session: AsyncSession, token: str, password: str, name: str | None,
                        meta: RequestMeta) -> User:
    check_policy(password)
    user = await accounts.spend_one_time_token(session, token, "invite")
    if not user.is_active:
        raise InvalidToken("invalid or expired token")
    user.password_hash = hash_password(password)
    user.password_changed_at = datetime.now(UTC)
    user.email_verified_at = user.email_verified_at or datetime.now(UTC)
    if name and name.strip():
        user.name = name.strip()[:200]
    await session.flush()
    await audit.record(session, action="user.invite_accepted", actor_type="MERCHANT_USER", actor_id=user.id,
                       merchant_id=user.merchant_id, resource_type="user", resource_id=user.id, meta=meta)
    return user


async def update_user(session: AsyncSession, merchant_id: uuid.UUID, user_id: uuid.UUID, *, actor_id: uuid.UUID,
                      role: str | None = None, branch_id: Any = _UNSET, is_active: bool | None = None,
                      meta: RequestMeta) -> User:
    user = await repo.merchant_user(session, merchant_id, user_id)
    if user is None:
        raise NotFound("user not found")
    if user.id == actor_id:
        raise Forbidden("you cannot change your own role or status")
    values: dict[str, Any] = {}
    if role is not None:
        if role not in MERCHANT_ROLES:
            raise ValidationFailed(f"role: must be one of {', '.join(MERCHANT_ROLES)}")
        values["role"] = role
    if branch_id is not _UNSET:
        await _check_branch(session, merchant_id, branch_id)
        values["branch_id"] = branch_id
    if is_active is not None:
        values["is_active"] = is_active
    demoting = user.role == "ADMIN" and (values.get("role", "ADMIN") != "ADMIN" or values.get("is_active") is False)
    if demoting and await repo.count_active_admins(session, merchant_id) <= 1:
        raise ValidationFailed("the merchant must keep at least one active ADMIN", code="LAST_ADMIN")
    changes = await repo.update_fields(session, user, values)
    if changes.get("is_active") and not user.is_active:
        await sessions.revoke_all(session, RefreshToken, user.id)
    if changes:
        await audit.record(session, action="user.updated", actor_type="MERCHANT_USER", actor_id=actor_id,
                           merchant_id=merchant_id, resource_type="user", resource_id=user.id, changes=changes,
                           meta=meta)
    return user
