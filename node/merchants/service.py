"""Merchant accounts: registration, profile, status and KYC transitions, live-mode rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import insert, literal, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin import audit
from node.auth.context import RequestMeta
from node.auth.passwords import check_policy, hash_password
from node.auth.tokens import new_opaque_token, token_hash
from node.config import Settings
from node.db.base import TokenAmount
from node.errors import ValidationFailed
from node.merchants import auth_cache
from node.merchants import repository as repo
from node.merchants.emails import request_email
from node.merchants.errors import (
    DirectorsNotVerified,
    EmailTaken,
    InstantAccessCapReached,
    InvalidTransition,
    LiveModeNotAllowed,
    MerchantNotFound,
)
from node.merchants.models import Merchant, OneTimeToken, User

# the original's transitions with its defects fixed: INSTANT_ACCESS can be rejected,
# REJECTED may resubmit, UNDER_REVIEW is reachable
KYC_TRANSITIONS: dict[str, frozenset[str]] = {
    "PENDING": frozenset({"UNDER_REVIEW", "INSTANT_ACCESS"}),
    "INSTANT_ACCESS": frozenset({"UNDER_REVIEW", "APPROVED", "REJECTED"}),
    "UNDER_REVIEW": frozenset({"APPROVED", "REJECTED"}),
    "REJECTED": frozenset({"UNDER_REVIEW"}),
    "APPROVED": frozenset(),
}
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    "ACTIVE": frozenset({"INACTIVE", "FROZEN", "TERMINATED"}),
    "INACTIVE": frozenset({"ACTIVE"}),
    "FROZEN": frozenset({"ACTIVE", "TERMINATED"}),
    "TERMINATED": frozenset(),
}
STATUS_EMAIL = {"FROZEN": "merchant.frozen", "TERMINATED": "merchant.terminated"}
LIVE_KYC = frozenset({"INSTANT_ACCESS", "APPROVED"})
USDT_UNIT = 10**18


def normalize_email(raw: str) -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed(f"email: {exc}") from None


async def create_merchant(
    session: AsyncSession, settings: Settings, *, business_name: str, email: str, password: str | None,
    name: str, phone: str | None = None, kyc_status: str = "PENDING", status: str = "ACTIVE",
    email_verified: bool = False, meta: RequestMeta | None = None, actor_type: audit.ActorType = "MERCHANT_USER",
    actor_id: uuid.UUID | None = None, send_emails: bool = True,
) -> tuple[Merchant, User]:
    """A merchant and its first ADMIN user (the original's registration)."""
    email = normalize_email(email)
    if password is not None:
        check_policy(password)
    business_name = business_name.strip()
    if not business_name:
        raise ValidationFailed("businessName: must not be empty")
    if await repo.merchant_email_taken(session, email):
        raise EmailTaken("an account with this email already exists")
    now = datetime.now(UTC)
    merchant_id, user_id = uuid.uuid4(), uuid.uuid4()
    try:
        async with session.begin_nested():
            await session.execute(insert(Merchant).values(
                id=merchant_id, business_name=business_name, email=email, phone=phone, country="LK",
                currency="LKR", kyc_status=kyc_status, status=status,
                email_verified_at=now if email_verified else None,
                kyc_reviewed_at=now if kyc_status == "APPROVED" else None,
            ))
            await session.execute(insert(User).values(
                id=user_id, merchant_id=merchant_id, email=email, name=name.strip() or business_name,
                phone=phone, password_hash=hash_password(password) if password else None, role="ADMIN",
                is_active=True, email_verified_at=now if email_verified else None,
                password_changed_at=now if password else None,
            ))
    except IntegrityError:
        raise EmailTaken("an account with this email already exists") from None
    merchant = await repo.get_merchant(session, merchant_id)
    user = await repo.get_user(session, user_id)
    assert merchant is not None and user is not None
    await audit.record(session, action="merchant.registered", actor_type=actor_type,
                       actor_id=actor_id or user_id, merchant_id=merchant_id, resource_type="merchant",
                       resource_id=merchant_id, details={"email": email}, meta=meta)
    if send_emails:
        await request_email(session, "merchant.welcome", email, merchant_id=merchant_id,
                            context={"businessName": business_name, "name": user.name,
                                     "portalUrl": settings.portal_url})
        if not email_verified:
            await send_verification(session, settings, user)
    return merchant, user


async def send_verification(session: AsyncSession, settings: Settings, user: User) -> None:
    token = new_opaque_token("ev")
    await session.execute(insert(OneTimeToken).values(
        id=uuid.uuid4(), user_id=user.id, purpose="email_verification", token_hash=token_hash(token),
        expires_at=datetime.now(UTC) + timedelta(seconds=settings.email_verification_ttl_s),
    ))
    await request_email(session, "email.verification", user.email, merchant_id=user.merchant_id, context={
        "name": user.name, "token": token, "verifyUrl": f"{settings.portal_url}/verify-email?token={token}",
        "expiresInHours": settings.email_verification_ttl_s // 3600,
    })


async def get(session: AsyncSession, merchant_id: uuid.UUID, *, for_update: bool = False) -> Merchant:
    merchant = await repo.get_merchant(session, merchant_id, for_update=for_update)
    if merchant is None:
        raise MerchantNotFound("merchant not found")
    return merchant


PROFILE_FIELDS = frozenset({
    "business_name", "phone", "website", "business_type", "registration_number", "description",
    "address_line1", "address_line2", "city", "postal_code", "bank_name", "bank_branch",
    "bank_account_name", "bank_account_number", "payout_address",
})


async def update_profile(
    session: AsyncSession, merchant_id: uuid.UUID, values: dict[str, Any], *, actor_id: uuid.UUID | None,
    meta: RequestMeta | None = None,
) -> Merchant:
    unknown = set(values) - PROFILE_FIELDS
    if unknown:
        raise ValidationFailed(f"cannot change {', '.join(sorted(unknown))}")
    merchant = await get(session, merchant_id, for_update=True)
    changes = await repo.update_fields(session, merchant, values)
    if changes:
        await audit.record(session, action="merchant.updated", actor_type="MERCHANT_USER", actor_id=actor_id,
                           merchant_id=merchant_id, resource_type="merchant", resource_id=merchant_id,
                           changes=changes, meta=meta)
    return merchant


async def change_status(
    session: AsyncSession, merchant_id: uuid.UUID, target: str, *, reason: str | None,
    actor_id: uuid.UUID | None, actor_type: audit.ActorType = "ADMIN", meta: RequestMeta | None = None,
) -> Merchant:
    """ACTIVE/INACTIVE/FROZEN/TERMINATED. API keys and portal sessions check the status on every
    request, so a non-active merchant is locked out at once; its refresh tokens are revoked too."""
    from node.auth import sessions
    from node.merchants.models import RefreshToken

    merchant = await get(session, merchant_id, for_update=True)
    old = merchant.status
    if target not in STATUS_TRANSITIONS.get(old, frozenset()):
        raise InvalidTransition(f"merchant cannot go from {old} to {target}")
    merchant.status = target
    merchant.status_reason = (reason or "").strip()[:1000] or None
    await session.flush()
    auth_cache.changed(session, merchant_id)
    if target != "ACTIVE":
        for user in await repo.list_users(session, merchant_id):
            await sessions.revoke_all(session, RefreshToken, user.id)
    action = {"ACTIVE": "merchant.reactivated", "INACTIVE": "merchant.deactivated",
              "FROZEN": "merchant.frozen", "TERMINATED": "merchant.terminated"}[target]
    await audit.record(session, action=action, actor_type=actor_type, actor_id=actor_id,
                       merchant_id=merchant_id, resource_type="merchant", resource_id=merchant_id,
                       changes={"status": [old, target]}, details={"reason": merchant.status_reason}, meta=meta)
    template = STATUS_EMAIL.get(target) or ("merchant.unfrozen" if old == "FROZEN" else None)
    if template:
        await request_email(session, template, merchant.email, merchant_id=merchant_id,  # type: ignore[arg-type]
                            context={"businessName": merchant.business_name, "reason": merchant.status_reason})
    return merchant


async def transition_kyc(
    session: AsyncSession, merchant: Merchant, target: str, *, actor_type: audit.ActorType,
    actor_id: uuid.UUID | None, details: dict[str, Any] | None = None, meta: RequestMeta | None = None,
) -> None:
    old = merchant.kyc_status
    if target not in KYC_TRANSITIONS.get(old, frozenset()):
        raise InvalidTransition(f"KYC cannot go from {old} to {target}")
    merchant.kyc_status = target
    if target in ("APPROVED", "REJECTED"):
        merchant.kyc_reviewed_at = datetime.now(UTC)
        merchant.kyc_reviewed_by = actor_id if actor_type == "ADMIN" else None
    await session.flush()
    auth_cache.changed(session, merchant.id)
    await audit.record(session, action=f"kyc.{target.lower()}", actor_type=actor_type, actor_id=actor_id,
                       merchant_id=merchant.id, resource_type="merchant", resource_id=merchant.id,
                       changes={"kycStatus": [old, target]}, details=details, meta=meta)


async def approve_kyc(
    session: AsyncSession, settings: Settings, merchant_id: uuid.UUID, *, admin_id: uuid.UUID | None,
    force: bool = False, force_reason: str | None = None, notes: str | None = None,
    meta: RequestMeta | None = None,
) -> Merchant:
    merchant = await get(session, merchant_id, for_update=True)
    directors = await repo.list_directors(session, merchant_id)
    unverified = [d for d in directors if d.status != "VERIFIED"]
    if unverified and not force:
        raise DirectorsNotVerified(f"{len(unverified)} director(s) not verified; approve with force and a reason")
    if force and not (force_reason or "").strip():
        raise ValidationFailed("forceReason: required when forcing approval")
    merchant.kyc_review_notes = (notes or "").strip() or merchant.kyc_review_notes
    merchant.kyc_rejection_reason = None
    await transition_kyc(session, merchant, "APPROVED", actor_type="ADMIN", actor_id=admin_id, meta=meta,
                         details={"forced": force, "forceReason": force_reason if force else None,
                                  "unverifiedDirectors": len(unverified), "notes": notes})
    await request_email(session, "kyc.approved", merchant.email, merchant_id=merchant.id,
                        context={"businessName": merchant.business_name, "portalUrl": settings.portal_url})
    return merchant


async def reject_kyc(
    session: AsyncSession, merchant_id: uuid.UUID, *, admin_id: uuid.UUID | None, reason: str,
    notes: str | None = None, meta: RequestMeta | None = None,
) -> Merchant:
    if not reason.strip():
        raise ValidationFailed("reason: required")
    merchant = await get(session, merchant_id, for_update=True)
    merchant.kyc_rejection_reason = reason.strip()[:2000]
    merchant.kyc_review_notes = (notes or "").strip() or merchant.kyc_review_notes
    await transition_kyc(session, merchant, "REJECTED", actor_type="ADMIN", actor_id=admin_id, meta=meta,
                         details={"reason": merchant.kyc_rejection_reason})
    await request_email(session, "kyc.rejected", merchant.email, merchant_id=merchant.id,
                        context={"businessName": merchant.business_name, "reason": merchant.kyc_rejection_reason})
    return merchant


async def start_review(
    session: AsyncSession, merchant_id: uuid.UUID, *, admin_id: uuid.UUID | None, meta: RequestMeta | None = None,
) -> Merchant:
    merchant = await get(session, merchant_id, for_update=True)
    await transition_kyc(session, merchant, "UNDER_REVIEW", actor_type="ADMIN", actor_id=admin_id, meta=meta)
    return merchant


def ensure_live_allowed(kyc_status: str) -> None:
    """Live-mode payments need INSTANT_ACCESS (within the cap) or APPROVED KYC; test mode always works."""
    if kyc_status not in LIVE_KYC:
        raise LiveModeNotAllowed("live payments need KYC instant access or approval; use a test key")


async def reserve_instant_access(
    session: AsyncSession, settings: Settings, merchant_id: uuid.UUID, amount_usdt_base_units: int,
) -> None:
    """For a live payment: APPROVED passes; INSTANT_ACCESS counts ``amount`` against the cap
    atomically (one UPDATE), refusing a payment that would pass it. Call in the payment's transaction."""
    from node.merchants.models import Merchant as M

    if amount_usdt_base_units <= 0:
        raise ValidationFailed("amount must be positive")
    cap = settings.instant_access_cap_usdt * USDT_UNIT
    # uint256-sized values: bound as NUMERIC, not BIGINT
    amount = literal(Decimal(amount_usdt_base_units), TokenAmount)
    result = await session.execute(
        update(M).where(M.id == merchant_id, M.status == "ACTIVE", M.kyc_status == "INSTANT_ACCESS",
                        M.instant_access_used + amount <= literal(Decimal(cap), TokenAmount))
        .values(instant_access_used=M.instant_access_used + amount).returning(M.id)
    )
    if result.first() is not None:
        return
    merchant = await get(session, merchant_id)
    ensure_live_allowed(merchant.kyc_status)
    if merchant.kyc_status == "INSTANT_ACCESS":
        left = Decimal(max(0, cap - int(merchant.instant_access_used))) / USDT_UNIT
        raise InstantAccessCapReached(
            f"instant-access limit of {settings.instant_access_cap_usdt} USDT reached ({left.normalize()} left); "
            "complete KYC review to lift it")
