"""Portal accounts of merchant users: login (with the TOTP step), token refresh and logout,
password change and reset, e-mail verification, TOTP enrolment."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin import audit
from node.auth import sessions, totp
from node.auth.context import RequestMeta
from node.auth.passwords import check_policy, hash_password, verify_password
from node.auth.secrets import SecretBox
from node.auth.tokens import (
    MERCHANT_AUDIENCE,
    decode_jwt,
    issue_jwt,
    new_opaque_token,
    subject_of,
    token_hash,
)
from node.config import Settings
from node.errors import Unauthorized, ValidationFailed
from node.merchants import repository as repo
from node.merchants.emails import request_email
from node.merchants.errors import InvalidCredentials, InvalidToken, MerchantInactive
from node.merchants.models import Merchant, OneTimeToken, RecoveryCode, RefreshToken, User

CHALLENGE_AUDIENCE = "openpay:merchant:challenge"
TOTP_CONTEXT = "totp-merchant-user"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class LoginResult:
    user: User
    merchant: Merchant
    tokens: TokenPair | None = None
    challenge_token: str | None = None
    first_login: bool = False


def access_token(settings: Settings, user: User) -> str:
    return issue_jwt(settings, audience=MERCHANT_AUDIENCE, subject=user.id, ttl_s=settings.access_token_ttl_s,
                     claims={"mid": str(user.merchant_id), "role": user.role,
                             "bid": str(user.branch_id) if user.branch_id else None})


async def issue_tokens(session: AsyncSession, settings: Settings, user: User,
                       family_id: uuid.UUID | None = None) -> TokenPair:
    refresh, _ = await sessions.issue(session, RefreshToken, user.id, settings.refresh_token_ttl_s, family_id)
    return TokenPair(access_token(settings, user), refresh, settings.access_token_ttl_s)


async def _active_user_and_merchant(session: AsyncSession, user: User | None) -> tuple[User, Merchant]:
    if user is None or not user.is_active or user.password_hash is None:
        raise InvalidCredentials("invalid email or password")
    merchant = await repo.get_merchant(session, user.merchant_id)
    if merchant is None:
        raise InvalidCredentials("invalid email or password")
    if merchant.status != "ACTIVE":
        raise MerchantInactive(f"merchant account is {merchant.status.lower()}")
    return user, merchant


async def login(session: AsyncSession, settings: Settings, email: str, password: str,
                meta: RequestMeta) -> LoginResult:
    """Password step. With 2FA on, returns a short challenge token for ``login_second_factor``."""
    user = await repo.user_by_email(session, email.strip().lower())
    if not verify_password(user.password_hash if user else None, password):
        raise InvalidCredentials("invalid email or password")
    user, merchant = await _active_user_and_merchant(session, user)
    if user.totp_enabled:
        challenge = issue_jwt(settings, audience=CHALLENGE_AUDIENCE, subject=user.id,  # type: ignore[arg-type]
                              ttl_s=settings.challenge_token_ttl_s)
        return LoginResult(user, merchant, challenge_token=challenge)
    return await _complete_login(session, settings, user, merchant, meta, method="password")


async def _complete_login(session: AsyncSession, settings: Settings, user: User, merchant: Merchant,
                          meta: RequestMeta, *, method: str) -> LoginResult:
    first_login = user.last_login_at is None
    user.last_login_at = datetime.now(UTC)
    tokens = await issue_tokens(session, settings, user)
    await audit.record(session, action="merchant_user.login", actor_type="MERCHANT_USER", actor_id=user.id,
                       merchant_id=user.merchant_id, resource_type="user", resource_id=user.id,
                       details={"method": method}, meta=meta)
    return LoginResult(user, merchant, tokens=tokens, first_login=first_login)


async def login_second_factor(session: AsyncSession, settings: Settings, challenge_token: str, *,
                              code: str | None, recovery_code: str | None, meta: RequestMeta) -> LoginResult:
    claims = decode_jwt(settings, challenge_token, audience=CHALLENGE_AUDIENCE)  # type: ignore[arg-type]
    user = await repo.get_user(session, subject_of(claims), for_update=True)
    user, merchant = await _active_user_and_merchant(session, user)
    await check_second_factor(session, settings, user, code=code, recovery_code=recovery_code)
    return await _complete_login(session, settings, user, merchant, meta,
                                 method="totp" if code else "recovery_code")


async def check_second_factor(session: AsyncSession, settings: Settings, user: Any, *, code: str | None,
                              recovery_code: str | None, recovery_model: type[Any] = RecoveryCode,
                              context: str = TOTP_CONTEXT) -> None:
    """A TOTP code newer than the last accepted one, or an unused recovery code (then spent)."""
    if not user.totp_enabled or not user.totp_secret:
        raise Unauthorized("two-factor authentication is not enabled")
    if code:
        secret = SecretBox.from_settings(settings).open(user.totp_secret, context=context)
        step = totp.matching_step(secret, code, last_step=user.totp_last_step)
        if step is None:
            raise InvalidCredentials("invalid two-factor code")
        user.totp_last_step = step
        await session.flush()
        return
    if recovery_code:
        result = await session.execute(
            update(recovery_model)
            .where(recovery_model.user_id == user.id, recovery_model.used_at.is_(None),
                   recovery_model.code_hash == totp.recovery_code_hash(recovery_code))
            .values(used_at=datetime.now(UTC)).returning(recovery_model.id)
        )
        if result.first() is None:
            raise InvalidCredentials("invalid recovery code")
        return
    raise ValidationFailed("code or recoveryCode is required")


async def refresh(session: AsyncSession, settings: Settings, token: str) -> tuple[TokenPair, User]:
    """Rotate; raises ``sessions.RefreshReused`` (caller revokes the family in its own transaction)."""
    try:
        rotated = await sessions.rotate(session, RefreshToken, token, settings.refresh_token_ttl_s)
    except sessions.RefreshInvalid:
        # the original answers 403 on refresh for a non-active merchant; its tokens were revoked
        owner = await sessions.owner(session, RefreshToken, token)
        caller = await repo.get_user(session, owner) if owner else None
        merchant = await repo.get_merchant(session, caller.merchant_id) if caller else None
        if merchant is not None and merchant.status != "ACTIVE":
            raise MerchantInactive(f"merchant account is {merchant.status.lower()}") from None
        raise
    user = await repo.get_user(session, rotated.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("invalid refresh token")
    merchant = await repo.get_merchant(session, user.merchant_id)
    if merchant is None or merchant.status != "ACTIVE":
        raise MerchantInactive("merchant account is not active")
    return TokenPair(access_token(settings, user), rotated.refresh_token, settings.access_token_ttl_s), user


async def revoke_reused_family(session: AsyncSession, reused: sessions.RefreshReused, meta: RequestMeta) -> None:
    await sessions.revoke_family(session, RefreshToken, reused.family_id)
    user = await repo.get_user(session, reused.user_id)
    await audit.record(session, action="merchant_user.refresh_reuse", actor_type="MERCHANT_USER",
                       actor_id=reused.user_id, merchant_id=user.merchant_id if user else None,
                       resource_type="refresh_family", resource_id=reused.family_id, meta=meta)


async def logout(session: AsyncSession, token: str, meta: RequestMeta) -> None:
    user_id = await sessions.revoke_token(session, RefreshToken, token)
    if user_id is not None:
        user = await repo.get_user(session, user_id)
        await audit.record(session, action="merchant_user.logout", actor_type="MERCHANT_USER", actor_id=user_id,
                           merchant_id=user.merchant_id if user else None, meta=meta)


async def change_password(session: AsyncSession, user_id: uuid.UUID, current: str, new: str,
                          meta: RequestMeta) -> None:
    user = await repo.get_user(session, user_id, for_update=True)
    if user is None or not verify_password(user.password_hash, current):
        raise InvalidCredentials("current password is wrong")
    check_policy(new)
    user.password_hash = hash_password(new)
    user.password_changed_at = datetime.now(UTC)
    await sessions.revoke_all(session, RefreshToken, user.id)
    await audit.record(session, action="merchant_user.password_changed", actor_type="MERCHANT_USER",
                       actor_id=user.id, merchant_id=user.merchant_id, resource_type="user", resource_id=user.id,
                       meta=meta)


async def _new_one_time_token(session: AsyncSession, user_id: uuid.UUID, purpose: str, ttl_s: int,
                              prefix: str) -> str:
    token = new_opaque_token(prefix)
    await session.execute(insert(OneTimeToken).values(
        id=uuid.uuid4(), user_id=user_id, purpose=purpose, token_hash=token_hash(token),
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s),
    ))
    return token


async def spend_one_time_token(session: AsyncSession, token: str, purpose: str) -> User:
    """Marks the token used (single use) and returns its user; any failure is the same 400."""
    row = (await session.execute(
        update(OneTimeToken)
        .where(OneTimeToken.token_hash == token_hash(token), OneTimeToken.purpose == purpose,
               OneTimeToken.used_at.is_(None), OneTimeToken.expires_at > datetime.now(UTC))
        .values(used_at=datetime.now(UTC)).returning(OneTimeToken.user_id)
    )).first()
    user = await repo.get_user(session, row[0], for_update=True) if row else None
    if user is None:
        raise InvalidToken("invalid or expired token")
    return user


async def request_password_reset(session: AsyncSession, settings: Settings, email: str, meta: RequestMeta) -> None:
    """Always answers the same way, so it does not reveal which e-mails have accounts."""
    user = await repo.user_by_email(session, email.strip().lower())
    if user is None or not user.is_active:
        return
    token = await _new_one_time_token(session, user.id, "password_reset", settings.password_reset_ttl_s, "pr")
    await request_email(session, "password.reset", user.email, merchant_id=user.merchant_id, context={
        "name": user.name, "token": token, "resetUrl": f"{settings.portal_url}/reset-password?token={token}",
        "expiresInMinutes": settings.password_reset_ttl_s // 60,
    })
    await audit.record(session, action="merchant_user.password_reset_requested", actor_type="MERCHANT_USER",
                       actor_id=user.id, merchant_id=user.merchant_id, meta=meta)


async def reset_password(session: AsyncSession, token: str, new_password: str, meta: RequestMeta) -> None:
    check_policy(new_password)
    user = await spend_one_time_token(session, token, "password_reset")
    user.password_hash = hash_password(new_password)
    user.password_changed_at = datetime.now(UTC)
    await sessions.revoke_all(session, RefreshToken, user.id)
    await audit.record(session, action="merchant_user.password_reset", actor_type="MERCHANT_USER",
                       actor_id=user.id, merchant_id=user.merchant_id, meta=meta)


async def verify_email(session: AsyncSession, token: str) -> User:
    user = await spend_one_time_token(session, token, "email_verification")
    now = datetime.now(UTC)
    user.email_verified_at = now
    merchant = await repo.get_merchant(session, user.merchant_id, for_update=True)
    if merchant is not None and merchant.email == user.email and merchant.email_verified_at is None:
        merchant.email_verified_at = now
    await session.flush()
    return user


# --- TOTP enrolment (shared with admins through the model/context arguments) -------------------
@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str
    qr_svg: str


async def start_totp(session: AsyncSession, settings: Settings, user: Any, *, context: str = TOTP_CONTEXT
                     ) -> Enrolment:
    if user.totp_enabled:
        raise ValidationFailed("two-factor authentication is already enabled", code="TOTP_ALREADY_ENABLED")
    secret = totp.new_secret()
    user.totp_secret = SecretBox.from_settings(settings).seal(secret, context=context)
    user.totp_last_step = None
    await session.flush()
    uri = totp.provisioning_uri(secret, user.email, settings.totp_issuer)
    return Enrolment(secret, uri, totp.qr_svg_data_uri(uri))


async def confirm_totp(session: AsyncSession, settings: Settings, user: Any, code: str, *,
                       recovery_model: type[Any] = RecoveryCode, context: str = TOTP_CONTEXT) -> list[str]:
    """Turns 2FA on with a first valid code; returns ten recovery codes (shown once, stored hashed)."""
    if user.totp_enabled:
        raise ValidationFailed("two-factor authentication is already enabled", code="TOTP_ALREADY_ENABLED")
    if not user.totp_secret:
        raise ValidationFailed("start enrolment first", code="TOTP_NOT_STARTED")
    secret = SecretBox.from_settings(settings).open(user.totp_secret, context=context)
    step = totp.matching_step(secret, code, last_step=user.totp_last_step)
    if step is None:
        raise InvalidCredentials("invalid two-factor code")
    user.totp_enabled = True
    user.totp_last_step = step
    codes = totp.new_recovery_codes()
    await session.execute(update(recovery_model).where(recovery_model.user_id == user.id,
                                                       recovery_model.used_at.is_(None))
                          .values(used_at=datetime.now(UTC)))
    await session.execute(insert(recovery_model), [
        {"id": uuid.uuid4(), "user_id": user.id, "code_hash": totp.recovery_code_hash(c)} for c in codes
    ])
    await session.flush()
    return codes


async def disable_totp(session: AsyncSession, settings: Settings, user: Any, code: str, *,
                       recovery_model: type[Any] = RecoveryCode, context: str = TOTP_CONTEXT) -> None:
    await check_second_factor(session, settings, user, code=code, recovery_code=None,
                              recovery_model=recovery_model, context=context)
    user.totp_enabled = False
    user.totp_secret = None
    await session.execute(update(recovery_model).where(recovery_model.user_id == user.id,
                                                       recovery_model.used_at.is_(None))
                          .values(used_at=datetime.now(UTC)))
    await session.flush()


async def unused_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> int:
    rows = await session.execute(select(RecoveryCode.id).where(RecoveryCode.user_id == user_id,
                                                              RecoveryCode.used_at.is_(None)))
    return len(rows.all())
