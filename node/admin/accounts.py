"""Platform admins: creation and invitation, login with mandatory 2FA, forced password change.

Login is two steps, always: password, then a TOTP (or recovery) code. An admin
without 2FA gets a challenge token that only lets it enrol; an invited admin must
set its own password first (``must_change_password``), and until then every admin
route answers 403 PASSWORD_CHANGE_REQUIRED: the server enforces it, not the portal.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin import audit
from node.admin.models import AdminInvite, AdminRecoveryCode, AdminRefreshToken, AdminUser
from node.auth import sessions
from node.auth.context import RequestMeta
from node.auth.passwords import check_policy, hash_password, verify_password
from node.auth.principal import ADMIN_ROLES
from node.auth.tokens import ADMIN_AUDIENCE, decode_jwt, issue_jwt, new_opaque_token, subject_of, token_hash
from node.config import Settings
from node.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from node.merchants import accounts as shared
from node.merchants.emails import request_email
from node.merchants.errors import InvalidCredentials, InvalidToken
from node.merchants.service import normalize_email

CHALLENGE_AUDIENCE = "openpay:admin:challenge"
TOTP_CONTEXT = "totp-admin"


class AdminEmailTaken(Conflict):
    code = "EMAIL_TAKEN"


class PasswordChangeRequired(Forbidden):
    code = "PASSWORD_CHANGE_REQUIRED"


@dataclass(frozen=True)
class AdminLogin:
    admin: AdminUser
    challenge_token: str
    totp_enrolled: bool


def access_token(settings: Settings, admin: AdminUser) -> str:
    return issue_jwt(settings, audience=ADMIN_AUDIENCE, subject=admin.id,
                     ttl_s=settings.admin_access_token_ttl_s, claims={"role": f"PLATFORM_{admin.role}"})


async def issue_tokens(session: AsyncSession, settings: Settings, admin: AdminUser) -> shared.TokenPair:
    refresh, _ = await sessions.issue(session, AdminRefreshToken, admin.id, settings.admin_refresh_token_ttl_s)
    return shared.TokenPair(access_token(settings, admin), refresh, settings.admin_access_token_ttl_s)


async def get(session: AsyncSession, admin_id: uuid.UUID, *, for_update: bool = False) -> AdminUser | None:
    query = select(AdminUser).where(AdminUser.id == admin_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def create_admin(
    session: AsyncSession, *, email: str, name: str, role: str, password: str | None,
    must_change_password: bool = True, invited_by: uuid.UUID | None = None, meta: RequestMeta | None = None,
) -> AdminUser:
    if role not in ADMIN_ROLES:
        raise ValidationFailed(f"role: must be one of {', '.join(ADMIN_ROLES)}")
    email = normalize_email(email)
    if password is not None:
        check_policy(password)
    row = (await session.execute(
        pg_insert(AdminUser).values(
            id=uuid.uuid4(), email=email, name=name.strip() or email, role=role, is_active=True,
            password_hash=hash_password(password) if password else None,
            must_change_password=must_change_password, invited_by=invited_by,
        ).on_conflict_do_nothing().returning(AdminUser)
    )).scalar_one_or_none()
    if row is None:
        raise AdminEmailTaken("an admin with this email already exists")
    await audit.record(session, action="admin.created", actor_type="ADMIN" if invited_by else "SYSTEM",
                       actor_id=invited_by, resource_type="admin_user", resource_id=row.id,
                       details={"email": email, "role": role}, meta=meta)
    return row


async def invite_admin(session: AsyncSession, settings: Settings, *, email: str, name: str, role: str,
                       invited_by: uuid.UUID, meta: RequestMeta) -> AdminUser:
    admin = await create_admin(session, email=email, name=name, role=role, password=None,
                               must_change_password=True, invited_by=invited_by, meta=meta)
    token = new_opaque_token("ai")
    await session.execute(insert(AdminInvite).values(
        id=uuid.uuid4(), admin_id=admin.id, token_hash=token_hash(token),
        expires_at=datetime.now(UTC) + timedelta(seconds=settings.invite_ttl_s),
    ))
    await request_email(session, "admin.invite", admin.email, merchant_id=None, context={
        "name": admin.name, "role": role, "token": token,
        "acceptUrl": f"{settings.admin_portal_url}/accept-invite?token={token}",
        "expiresInDays": settings.invite_ttl_s // 86400,
    })
    return admin


async def accept_invite(session: AsyncSession, token: str, password: str, meta: RequestMeta) -> AdminUser:
    """Sets the invited admin's first password; it still logs in with 2FA enrolment afterwards."""
    check_policy(password)
    row = (await session.execute(
        update(AdminInvite).where(AdminInvite.token_hash == token_hash(token), AdminInvite.used_at.is_(None),
                                  AdminInvite.expires_at > datetime.now(UTC))
        .values(used_at=datetime.now(UTC)).returning(AdminInvite.admin_id)
    )).first()
    admin = await get(session, row[0], for_update=True) if row else None
    if admin is None or not admin.is_active:
        raise InvalidToken("invalid or expired token")
    admin.password_hash = hash_password(password)
    admin.must_change_password = False
    await audit.record(session, action="admin.invite_accepted", actor_type="ADMIN", actor_id=admin.id,
                       resource_type="admin_user", resource_id=admin.id, meta=meta)
    return admin


async def login(session: AsyncSession, settings: Settings, email: str, password: str) -> AdminLogin:
    admin = (await session.execute(select(AdminUser).where(AdminUser.email == email.strip().lower())
                                   )).scalar_one_or_none()
    if not verify_password(admin.password_hash if admin else None, password) or admin is None \
            or not admin.is_active:
        raise InvalidCredentials("invalid email or password")
    challenge = issue_jwt(settings, audience=CHALLENGE_AUDIENCE, subject=admin.id,  # type: ignore[arg-type]
                          ttl_s=settings.challenge_token_ttl_s)
    return AdminLogin(admin, challenge, admin.totp_enabled)


async def admin_for_challenge(session: AsyncSession, settings: Settings, challenge_token: str) -> AdminUser:
    claims = decode_jwt(settings, challenge_token, audience=CHALLENGE_AUDIENCE)  # type: ignore[arg-type]
    admin = await get(session, subject_of(claims), for_update=True)
    if admin is None or not admin.is_active:
        raise Unauthorized("invalid token")
    return admin


async def enrol_totp(session: AsyncSession, settings: Settings, challenge_token: str) -> shared.Enrolment:
    admin = await admin_for_challenge(session, settings, challenge_token)
    return await shared.start_totp(session, settings, admin, context=TOTP_CONTEXT)


async def confirm_totp(session: AsyncSession, settings: Settings, challenge_token: str, code: str,
                       meta: RequestMeta) -> tuple[list[str], shared.TokenPair, AdminUser]:
    admin = await admin_for_challenge(session, settings, challenge_token)
    codes = await shared.confirm_totp(session, settings, admin, code, recovery_model=AdminRecoveryCode,
                                      context=TOTP_CONTEXT)
    await audit.record(session, action="admin.2fa_enabled", actor_type="ADMIN", actor_id=admin.id,
                       resource_type="admin_user", resource_id=admin.id, meta=meta)
    return codes, await _complete(session, settings, admin, meta, "totp"), admin


async def second_factor(session: AsyncSession, settings: Settings, challenge_token: str, *, code: str | None,
                        recovery_code: str | None, meta: RequestMeta) -> tuple[shared.TokenPair, AdminUser]:
    admin = await admin_for_challenge(session, settings, challenge_token)
    if not admin.totp_enabled:
        raise ValidationFailed("enrol two-factor authentication first", code="TOTP_NOT_ENROLLED")
    await shared.check_second_factor(session, settings, admin, code=code, recovery_code=recovery_code,
                                     recovery_model=AdminRecoveryCode, context=TOTP_CONTEXT)
    return await _complete(session, settings, admin, meta, "totp" if code else "recovery_code"), admin


async def _complete(session: AsyncSession, settings: Settings, admin: AdminUser, meta: RequestMeta,
                    method: str) -> shared.TokenPair:
    admin.last_login_at = datetime.now(UTC)
    await audit.record(session, action="admin.login", actor_type="ADMIN", actor_id=admin.id,
                       resource_type="admin_user", resource_id=admin.id, details={"method": method}, meta=meta)
    return await issue_tokens(session, settings, admin)


async def refresh(session: AsyncSession, settings: Settings, token: str) -> shared.TokenPair:
    rotated = await sessions.rotate(session, AdminRefreshToken, token, settings.admin_refresh_token_ttl_s)
    admin = await get(session, rotated.user_id)
    if admin is None or not admin.is_active:
        raise Unauthorized("invalid refresh token")
    return shared.TokenPair(access_token(settings, admin), rotated.refresh_token, settings.admin_access_token_ttl_s)


async def revoke_reused_family(session: AsyncSession, reused: sessions.RefreshReused, meta: RequestMeta) -> None:
    await sessions.revoke_family(session, AdminRefreshToken, reused.family_id)
    await audit.record(session, action="admin.refresh_reuse", actor_type="ADMIN", actor_id=reused.user_id,
                       resource_type="refresh_family", resource_id=reused.family_id, meta=meta)


async def logout(session: AsyncSession, token: str, meta: RequestMeta) -> None:
    admin_id = await sessions.revoke_token(session, AdminRefreshToken, token)
    if admin_id:
        await audit.record(session, action="admin.logout", actor_type="ADMIN", actor_id=admin_id, meta=meta)


async def change_password(session: AsyncSession, admin_id: uuid.UUID, current: str, new: str,
                          meta: RequestMeta) -> None:
    admin = await get(session, admin_id, for_update=True)
    if admin is None or not verify_password(admin.password_hash, current):
        raise InvalidCredentials("current password is wrong")
    if current == new:
        raise ValidationFailed("newPassword: must differ from the current password")
    check_policy(new)
    admin.password_hash = hash_password(new)
    admin.must_change_password = False
    await sessions.revoke_all(session, AdminRefreshToken, admin.id)
    await audit.record(session, action="admin.password_changed", actor_type="ADMIN", actor_id=admin.id,
                       resource_type="admin_user", resource_id=admin.id, meta=meta)


async def list_admins(session: AsyncSession) -> list[AdminUser]:
    return list((await session.execute(select(AdminUser).order_by(AdminUser.created_at))).scalars())


async def update_admin(session: AsyncSession, admin_id: uuid.UUID, *, role: str | None, is_active: bool | None,
                       actor_id: uuid.UUID, meta: RequestMeta) -> AdminUser:
    admin = await get(session, admin_id, for_update=True)
    if admin is None:
        raise NotFound("admin user not found")
    if admin.id == actor_id:
        raise Forbidden("you cannot change your own role or status")
    changes: dict[str, list[object]] = {}
    if role is not None and role != admin.role:
        if role not in ADMIN_ROLES:
            raise ValidationFailed(f"role: must be one of {', '.join(ADMIN_ROLES)}")
        changes["role"] = [admin.role, role]
        admin.role = role
    if is_active is not None and is_active != admin.is_active:
        changes["isActive"] = [admin.is_active, is_active]
        admin.is_active = is_active
        if not is_active:
            await sessions.revoke_all(session, AdminRefreshToken, admin.id)
    if changes:
        await audit.record(session, action="admin.updated", actor_type="ADMIN", actor_id=actor_id,
                           resource_type="admin_user", resource_id=admin.id, changes=changes, meta=meta)
    return admin
