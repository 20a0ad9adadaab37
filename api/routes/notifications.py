"""Notifications: a merchant's e-mail log and preferences; admins' templates and the whole log."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from api.deps import RequestMeta, Session, require_admin_permission, require_permission
from node.admin import audit
from node.auth.principal import AdminPrincipal, MerchantPrincipal
from node.notifications import repository as repo
from node.notifications import service
from node.notifications.catalog import TemplateText
from node.notifications.errors import NotificationNotFound
from node.notifications.schemas import PreferencesIn, PreviewIn, TemplateIn, notification_out, template_out

router = APIRouter(tags=["notifications"])

MerchantRead = Annotated[MerchantPrincipal, Depends(require_permission("merchant:read"))]
MerchantWrite = Annotated[MerchantPrincipal, Depends(require_permission("merchant:write"))]
AdminRead = Annotated[AdminPrincipal, Depends(require_admin_permission("notifications:read"))]
AdminManage = Annotated[AdminPrincipal, Depends(require_admin_permission("system:manage"))]
Page = Annotated[int, Query(ge=1)]
PerPage = Annotated[int, Query(ge=1, le=100)]
# versions are int4 in the database: a larger number is a 400, not a driver error
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


# --- merchants ---

@router.get("/v1/notifications", summary="E-mails sent to the merchant")
async def merchant_log(session: Session, principal: MerchantRead, status: str | None = None,
                       template: str | None = None, page: Page = 1, perPage: PerPage = 20) -> dict[str, Any]:
    rows, total = await repo.list_notifications(
        session, merchant_id=principal.merchant_id, status=status.upper() if status else None, template=template,
        recipient=None, offset=(page - 1) * perPage, limit=perPage)
    return {"data": [notification_out(r) for r in rows], "meta": {"total": total, "page": page, "perPage": perPage}}


@router.get("/v1/notifications/preferences", summary="Which optional e-mails the merchant receives")
async def get_preferences(session: Session, principal: MerchantRead) -> dict[str, Any]:
    return {"data": await service.preferences(session, principal.merchant_id)}


@router.put("/v1/notifications/preferences", summary="Turn optional e-mails on or off")
async def put_preferences(body: PreferencesIn, session: Session, principal: MerchantWrite) -> dict[str, Any]:
    changes = {k: v for k, v in body.model_dump().items() if v is not None}
    return {"data": await service.set_preferences(session, principal.merchant_id, changes)}


# --- admins: the log ---

@router.get("/v1/admin/notifications", summary="The notification log")
async def admin_log(session: Session, admin: AdminRead, status: str | None = None, template: str | None = None,
                    to: str | None = None, merchantId: uuid.UUID | None = None, page: Page = 1,
                    perPage: PerPage = 20) -> dict[str, Any]:
    rows, total = await repo.list_notifications(
        session, merchant_id=merchantId, status=status.upper() if status else None, template=template,
        recipient=to, offset=(page - 1) * perPage, limit=perPage)
    return {"data": [notification_out(r) for r in rows], "meta": {"total": total, "page": page, "perPage": perPage}}


@router.get("/v1/admin/notifications/{notificationId}", summary="One e-mail with its body")
async def admin_notification(notificationId: uuid.UUID, session: Session, admin: AdminRead) -> dict[str, Any]:
    row = await repo.get_notification(session, notificationId)
    if row is None:
        raise NotificationNotFound()
    return {"data": notification_out(row, with_body=True)}


@router.post("/v1/admin/notifications/{notificationId}/resend", summary="Send a logged e-mail again")
async def resend(notificationId: uuid.UUID, session: Session, admin: AdminManage,
                 meta: RequestMeta) -> dict[str, Any]:
    row = await service.resend(session, notificationId)
    await audit.record(session, action="notification.resent", actor_type="ADMIN", actor_id=admin.admin_id,
                       merchant_id=row.merchant_id, resource_type="notification", resource_id=row.id, meta=meta)
    return {"data": notification_out(row)}


# --- admins: templates (the original's /v1/admin/email-templates, now really used) ---

@router.get("/v1/admin/email-templates", summary="Every template's active version")
async def list_templates(session: Session, admin: AdminRead) -> dict[str, Any]:
    return {"data": [template_out(r, with_body=False) for r in await service.all_templates(session)]}


@router.get("/v1/admin/email-templates/{name}", summary="A template: active version and history")
async def get_template(name: str, session: Session, admin: AdminRead) -> dict[str, Any]:
    active = await service.active_template(session, name)
    versions = await service.template_versions(session, name)
    return {"data": {**template_out(active), "versions": [template_out(v, with_body=False) for v in versions]}}


@router.put("/v1/admin/email-templates/{name}", summary="Save a new version and make it active")
async def save_template(name: str, body: TemplateIn, session: Session, admin: AdminManage,
                        meta: RequestMeta) -> dict[str, Any]:
    row = await service.save_version(session, name, TemplateText(body.subject, body.body_text, body.body_html),
                                     admin.admin_id)
    await audit.record(session, action="email_template.updated", actor_type="ADMIN", actor_id=admin.admin_id,
                       resource_type="email_template", resource_id=name, details={"version": row.version}, meta=meta)
    return {"data": template_out(row)}


@router.post("/v1/admin/email-templates/{name}/preview", summary="Render a draft or the active version")
async def preview(name: str, body: PreviewIn, session: Session, admin: AdminRead) -> dict[str, Any]:
    rendered = await service.preview(session, name, subject=body.subject, body_text=body.body_text,
                                     body_html=body.body_html, context=body.context)
    return {"data": {"subject": rendered.subject, "bodyText": rendered.body_text, "bodyHtml": rendered.body_html}}


@router.post("/v1/admin/email-templates/{name}/versions/{version}/activate",
             summary="Make an earlier version active")
async def activate(name: str, version: Version, session: Session, admin: AdminManage,
                   meta: RequestMeta) -> dict[str, Any]:
    row = await service.activate_version(session, name, version)
    await audit.record(session, action="email_template.activated", actor_type="ADMIN", actor_id=admin.admin_id,
                       resource_type="email_template", resource_id=name, details={"version": version}, meta=meta)
    return {"data": template_out(row)}


@router.post("/v1/admin/email-templates/{name}/reset", summary="A new version from the shipped default")
async def reset(name: str, session: Session, admin: AdminManage, meta: RequestMeta) -> dict[str, Any]:
    row = await service.reset_to_default(session, name, admin.admin_id)
    await audit.record(session, action="email_template.reset", actor_type="ADMIN", actor_id=admin.admin_id,
                       resource_type="email_template", resource_id=name, details={"version": row.version}, meta=meta)
    return {"data": template_out(row)}
