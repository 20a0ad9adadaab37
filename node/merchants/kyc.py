"""KYC: submission, directors verified through single-use e-mailed links, documents.

Documents go to private storage (node/storage.py) and are served only through
short-lived signed links issued to the owning merchant or to admins.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin import audit
from node.auth.context import RequestMeta
from node.auth.tokens import decode_jwt, issue_jwt, new_opaque_token, subject_of, token_hash
from node.config import Settings
from node.errors import NotFound, ValidationFailed
from node.merchants import repository as repo
from node.merchants import service
from node.merchants.emails import request_email
from node.merchants.errors import InvalidToken, InvalidTransition, TooManyDirectors
from node.merchants.models import MAX_DIRECTORS, Director, Document
from node.storage import document_key, sniff, store_from_settings

DOCUMENT_CATEGORIES = frozenset({
    "business_registration", "director_id", "bank_statement", "proof_of_address", "tax_certificate",
    "signed_agreement", "other",
})
DOCUMENT_AUDIENCE = "openpay:document"


async def submit(session: AsyncSession, settings: Settings, merchant_id: uuid.UUID, *,
                 user_id: uuid.UUID | None, meta: RequestMeta) -> str:
    """PENDING -> INSTANT_ACCESS (the original's instant access, capped); INSTANT_ACCESS or
    REJECTED -> UNDER_REVIEW (full review, also a resubmission after rejection)."""
    merchant = await service.get(session, merchant_id, for_update=True)
    missing = [name for name, value in (
        ("businessName", merchant.business_name), ("phone", merchant.phone), ("addressLine1", merchant.address_line1),
        ("city", merchant.city),
    ) if not value]
    if missing:
        raise ValidationFailed(f"complete the business details first: {', '.join(missing)}", code="KYC_INCOMPLETE")
    from node.admin import platform

    pending = await platform.pending_legal(session, merchant_id)
    if pending:
        raise ValidationFailed("accept the current " + ", ".join(d.kind.replace("_", " ") for d in pending)
                               + " first", code="LEGAL_ACCEPTANCE_REQUIRED")
    target = {"PENDING": "INSTANT_ACCESS", "INSTANT_ACCESS": "UNDER_REVIEW", "REJECTED": "UNDER_REVIEW"}.get(
        merchant.kyc_status)
    if target is None:
        raise InvalidTransition(f"KYC cannot be submitted while {merchant.kyc_status}")
    merchant.kyc_submitted_at = datetime.now(UTC)
    await service.transition_kyc(session, merchant, target, actor_type="MERCHANT_USER", actor_id=user_id,
                                 meta=meta)
    await request_email(session, "kyc.submitted", merchant.email, merchant_id=merchant_id, context={
        "businessName": merchant.business_name, "kycStatus": target,
        "instantAccessCapUsdt": str(settings.instant_access_cap_usdt),
    })
    from node.admin.models import AdminUser

    reviewers = (await session.execute(select(AdminUser.email).where(
        AdminUser.is_active.is_(True), AdminUser.role.in_(("SUPER_ADMIN", "ADMIN"))))).scalars().all()
    for email in reviewers:
        await request_email(session, "kyc.admin_review_needed", email, merchant_id=merchant_id, context={
            "businessName": merchant.business_name, "merchantId": str(merchant_id), "kycStatus": target,
            "adminUrl": f"{settings.admin_portal_url}/merchants/{merchant_id}",
        })
    return target


async def add_director(session: AsyncSession, settings: Settings, merchant_id: uuid.UUID, *, name: str,
                       email: str, user_id: uuid.UUID | None, meta: RequestMeta) -> Director:
    merchant = await service.get(session, merchant_id, for_update=True)  # serialises the count check
    count = int(await session.scalar(
        select(func.count()).select_from(Director).where(Director.merchant_id == merchant_id)) or 0)
    if count >= MAX_DIRECTORS:
        raise TooManyDirectors(f"at most {MAX_DIRECTORS} directors")
    name = name.strip()
    if not name:
        raise ValidationFailed("name: must not be empty")
    director = (await session.execute(insert(Director).values(
        id=uuid.uuid4(), merchant_id=merchant_id, name=name[:200], email=service.normalize_email(email),
        status="PENDING",
    ).returning(Director))).scalar_one()
    await _send_link(session, settings, director, merchant.business_name)
    await audit.record(session, action="director.added", actor_type="MERCHANT_USER", actor_id=user_id,
                       merchant_id=merchant_id, resource_type="director", resource_id=director.id,
                       details={"email": director.email}, meta=meta)
    return director


async def _send_link(session: AsyncSession, settings: Settings, director: Director, business_name: str) -> None:
    token = new_opaque_token("dv")
    director.token_hash = token_hash(token)
    director.token_expires_at = datetime.now(UTC) + timedelta(seconds=settings.director_link_ttl_s)
    await session.flush()
    await request_email(session, "director.verification", director.email, merchant_id=director.merchant_id,
                        context={"directorName": director.name, "businessName": business_name, "token": token,
                                 "verifyUrl": f"{settings.portal_url}/verify/director/{token}",
                                 "expiresInDays": settings.director_link_ttl_s // 86400})


async def resend_link(session: AsyncSession, settings: Settings, merchant_id: uuid.UUID,
                      director_id: uuid.UUID) -> Director:
    director = await repo.get_director(session, merchant_id, director_id)
    if director is None:
        raise NotFound("director not found")
    if director.status == "VERIFIED":
        raise InvalidTransition("director is already verified")
    merchant = await service.get(session, merchant_id)
    await _send_link(session, settings, director, merchant.business_name)
    return director


async def remove_director(session: AsyncSession, merchant_id: uuid.UUID, director_id: uuid.UUID, *,
                          user_id: uuid.UUID | None, meta: RequestMeta) -> None:
    director = await repo.get_director(session, merchant_id, director_id)
    if director is None:
        raise NotFound("director not found")
    await session.execute(delete(Director).where(Director.id == director.id))
    await audit.record(session, action="director.removed", actor_type="MERCHANT_USER", actor_id=user_id,
                       merchant_id=merchant_id, resource_type="director", resource_id=director_id, meta=meta)


@dataclass(frozen=True)
class DirectorInvitation:
    director_name: str
    business_name: str
    expires_at: datetime


async def _director_for_token(session: AsyncSession, token: str) -> Director:
    director = await repo.director_by_token(session, token_hash(token))
    if director is None or director.status != "PENDING" or director.token_expires_at is None \
            or director.token_expires_at <= datetime.now(UTC):
        raise InvalidToken("invalid or expired verification link")
    return director


async def director_invitation(session: AsyncSession, token: str) -> DirectorInvitation:
    director = await _director_for_token(session, token)
    merchant = await service.get(session, director.merchant_id)
    assert director.token_expires_at is not None
    return DirectorInvitation(director.name, merchant.business_name, director.token_expires_at)


async def verify_director(
    session: AsyncSession, settings: Settings, token: str, *, full_name: str, date_of_birth: date,
    id_number: str, phone: str, address: str, consent: bool, document: bytes, file_name: str | None,
    meta: RequestMeta,
) -> Director:
    """The public form: identity details, consent and a document; the link works once."""
    if not consent:
        raise ValidationFailed("consent: must be given")
    if date_of_birth >= date.today() or date_of_birth.year < 1900:
        raise ValidationFailed("dateOfBirth: not a plausible date of birth")
    sniffed = sniff(document, max_bytes=settings.director_document_max_bytes)
    director = await _director_for_token(session, token)
    stored = await _store(session, settings, director.merchant_id, "director_id", document, sniffed.content_type,
                          sniffed.extension, sniffed.sha256, file_name, uploaded_by=None, director_id=director.id)
    director.name = full_name.strip()[:200] or director.name
    director.date_of_birth = date_of_birth
    director.id_number, director.phone, director.address = id_number.strip(), phone.strip(), address.strip()
    director.consent_at = datetime.now(UTC)
    director.document_id = stored.id
    director.status = "VERIFIED"
    director.verified_at = datetime.now(UTC)
    director.token_hash = None  # single use
    await session.flush()
    merchant = await service.get(session, director.merchant_id)
    await request_email(session, "director.verified", merchant.email, merchant_id=merchant.id,
                        context={"directorName": director.name, "businessName": merchant.business_name})
    await audit.record(session, action="director.verified", actor_type="SYSTEM", merchant_id=merchant.id,
                       resource_type="director", resource_id=director.id, meta=meta)
    return director


async def _store(session: AsyncSession, settings: Settings, merchant_id: uuid.UUID, category: str, data: bytes,
                 content_type: str, extension: str, sha256: str, file_name: str | None, *,
                 uploaded_by: uuid.UUID | None, director_id: uuid.UUID | None = None) -> Document:
    key = document_key(merchant_id, category, extension)
    await store_from_settings(settings).put(key, data, content_type)
    return (await session.execute(insert(Document).values(
        id=uuid.uuid4(), merchant_id=merchant_id, director_id=director_id, category=category, storage_key=key,
        content_type=content_type, size=len(data), sha256=sha256,
        original_name=(file_name or "")[:255] or None, uploaded_by=uploaded_by,
    ).returning(Document))).scalar_one()


async def upload_document(session: AsyncSession, settings: Settings, merchant_id: uuid.UUID, *, category: str,
                          data: bytes, file_name: str | None, user_id: uuid.UUID | None,
                          meta: RequestMeta) -> Document:
    if category not in DOCUMENT_CATEGORIES:
        raise ValidationFailed(f"category: must be one of {', '.join(sorted(DOCUMENT_CATEGORIES))}")
    sniffed = sniff(data, max_bytes=settings.upload_max_bytes)
    document = await _store(session, settings, merchant_id, category, data, sniffed.content_type,
                            sniffed.extension, sniffed.sha256, file_name, uploaded_by=user_id)
    await audit.record(session, action="document.uploaded", actor_type="MERCHANT_USER", actor_id=user_id,
                       merchant_id=merchant_id, resource_type="document", resource_id=document.id,
                       details={"category": category, "size": document.size, "sha256": document.sha256}, meta=meta)
    return document


def download_token(settings: Settings, document: Document) -> tuple[str, datetime]:
    ttl = settings.signed_link_ttl_s
    token = issue_jwt(settings, audience=DOCUMENT_AUDIENCE, subject=document.id, ttl_s=ttl,  # type: ignore[arg-type]
                      claims={"mid": str(document.merchant_id)})
    return token, datetime.now(UTC) + timedelta(seconds=ttl)


def download_url(settings: Settings, token: str) -> str:
    return f"{settings.public_url}/v1/documents/download?token={token}"


async def open_download(session: AsyncSession, settings: Settings, token: str) -> tuple[Document, bytes]:
    claims: dict[str, Any] = decode_jwt(settings, token, audience=DOCUMENT_AUDIENCE)  # type: ignore[arg-type]
    document_id = subject_of(claims)
    try:
        merchant_id = uuid.UUID(str(claims.get("mid")))
    except ValueError:
        raise NotFound("document not found") from None
    document = await repo.get_document(session, merchant_id, document_id)
    if document is None:
        raise NotFound("document not found")
    return document, await store_from_settings(settings).get(document.storage_key)
