"""Platform settings with history, and versioned legal documents merchants accept."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin import audit
from node.admin.models import LegalAcceptance, LegalDocument, PlatformSetting, PlatformSettingChange
from node.auth.context import RequestMeta
from node.db.paging import page
from node.errors import NotFound, ValidationFailed

# known settings and their defaults (the original's: fees 1.5 / 0.5 %, min withdrawal 10, settlement 3 days)
DEFAULT_SETTINGS: dict[str, Any] = {
    "branding": {"platformName": "Open Pay", "supportEmail": "support@openpay.local"},
    "fees": {"platformFeePercent": "1.5", "exchangeFeePercent": "0.5"},
    "limits": {"minWithdrawalUsdt": "10", "instantAccessCapUsdt": "5000", "withdrawalApprovalThresholdUsdt": "1000"},
    "settlement": {"settlementDays": 3},
    "tokens": {"supported": ["USDT"]},
}
LEGAL_KINDS = ("terms_and_conditions", "sign_agreement", "privacy_policy")
REQUIRED_KINDS = ("terms_and_conditions", "privacy_policy")


async def get_settings(session: AsyncSession) -> dict[str, Any]:
    stored = {row.key: row.value for row in (await session.execute(select(PlatformSetting))).scalars()}
    return {key: stored.get(key, default) for key, default in DEFAULT_SETTINGS.items()}


async def put_setting(session: AsyncSession, key: str, value: Any, *, admin_id: uuid.UUID,
                      meta: RequestMeta) -> Any:
    if key not in DEFAULT_SETTINGS:
        raise NotFound(f"unknown setting {key[:50]}")
    if not isinstance(value, type(DEFAULT_SETTINGS[key])):
        raise ValidationFailed(f"value: {key} must be a JSON {type(DEFAULT_SETTINGS[key]).__name__}")
    old = (await session.execute(select(PlatformSetting.value).where(PlatformSetting.key == key).with_for_update()
                                 )).scalar_one_or_none()
    await session.execute(pg_insert(PlatformSetting).values(key=key, value=value, updated_by=admin_id)
                          .on_conflict_do_update(index_elements=["key"],
                                                 set_={"value": value, "updated_by": admin_id,
                                                       "updated_at": func.now()}))
    await session.execute(insert(PlatformSettingChange).values(key=key, old_value=old, new_value=value,
                                                               changed_by=admin_id))
    await audit.record(session, action="settings.updated", actor_type="ADMIN", actor_id=admin_id,
                       resource_type="setting", resource_id=key, changes={"value": [old, value]}, meta=meta)
    return value


async def setting_history(session: AsyncSession, key: str | None = None, limit: int = 100
                          ) -> list[PlatformSettingChange]:
    query = select(PlatformSettingChange).order_by(PlatformSettingChange.id.desc()).limit(limit)
    if key:
        query = query.where(PlatformSettingChange.key == key)
    return list((await session.execute(query)).scalars())


async def publish_legal(session: AsyncSession, *, kind: str, title: str, content: str, admin_id: uuid.UUID,
                        meta: RequestMeta) -> LegalDocument:
    """A new version becomes the current one (the original auto-activated too); merchants must accept it."""
    if kind not in LEGAL_KINDS:
        raise ValidationFailed(f"kind: must be one of {', '.join(LEGAL_KINDS)}")
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext("legal:" + kind))))
    version = int(await session.scalar(select(func.coalesce(func.max(LegalDocument.version), 0))
                                       .where(LegalDocument.kind == kind)) or 0) + 1
    await session.execute(update(LegalDocument).where(LegalDocument.kind == kind).values(is_active=False))
    document = (await session.execute(insert(LegalDocument).values(
        id=uuid.uuid4(), kind=kind, version=version, title=title, content=content, is_active=True,
        created_by=admin_id).returning(LegalDocument))).scalar_one()
    await audit.record(session, action="legal_document.published", actor_type="ADMIN", actor_id=admin_id,
                       resource_type="legal_document", resource_id=document.id,
                       details={"kind": kind, "version": version}, meta=meta)
    return document


async def list_legal(session: AsyncSession, *, current_only: bool) -> list[LegalDocument]:
    query = select(LegalDocument).order_by(LegalDocument.kind, LegalDocument.version.desc())
    if current_only:
        query = query.where(LegalDocument.is_active.is_(True))
    return list((await session.execute(query)).scalars())


async def accepted_ids(session: AsyncSession, merchant_id: uuid.UUID) -> set[uuid.UUID]:
    rows = await session.execute(select(LegalAcceptance.document_id).where(LegalAcceptance.merchant_id == merchant_id))
    return set(rows.scalars())


async def accept_legal(session: AsyncSession, merchant_id: uuid.UUID, document_id: uuid.UUID, *,
                       user_id: uuid.UUID | None, meta: RequestMeta) -> None:
    document = (await session.execute(select(LegalDocument).where(LegalDocument.id == document_id))
                ).scalar_one_or_none()
    if document is None or not document.is_active:
        raise NotFound("no such current legal document")
    inserted = (await session.execute(pg_insert(LegalAcceptance).values(
        id=uuid.uuid4(), merchant_id=merchant_id, document_id=document_id, user_id=user_id,
        ip=audit._clean_ip(meta.ip)).on_conflict_do_nothing().returning(LegalAcceptance.id))).first()
    if inserted:
        await audit.record(session, action="legal_document.accepted", actor_type="MERCHANT_USER", actor_id=user_id,
                           merchant_id=merchant_id, resource_type="legal_document", resource_id=document_id,
                           details={"kind": document.kind, "version": document.version}, meta=meta)


async def pending_legal(session: AsyncSession, merchant_id: uuid.UUID) -> list[LegalDocument]:
    """Current versions of the required documents this merchant has not accepted yet."""
    accepted = await accepted_ids(session, merchant_id)
    return [d for d in await list_legal(session, current_only=True)
            if d.kind in REQUIRED_KINDS and d.id not in accepted]


async def audit_entries(session: AsyncSession, *, merchant_id: uuid.UUID | None = None, action: str | None = None,
                        offset: int = 0, limit: int = 50) -> tuple[list[Any], int]:
    from node.admin.models import AuditLog

    query = select(AuditLog)
    if merchant_id is not None:
        query = query.where(AuditLog.merchant_id == merchant_id)
    if action:
        query = query.where(AuditLog.action == action)
    return await page(session, query, AuditLog.id.desc(), offset=offset, limit=limit)
