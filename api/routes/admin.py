"""The admin API: admin login with mandatory 2FA, admins and roles, merchant review and
management, platform settings, legal documents, the audit log. Every route declares the
admin permission it needs, checked on the server (original defects 1 and 11)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.deps import AdminUser, Limiter, RequestMeta, Resources, Session, Settings, rate_limit, require_admin_permission
from node.admin import accounts, audit, platform
from node.admin.schemas import (
    AcceptAdminInviteIn,
    AdminLoginOut,
    AdminMeOut,
    AdminMerchantOut,
    AdminOut,
    AdminSessionOut,
    ApproveIn,
    AuditVerifyOut,
    ChallengeCodeIn,
    ChallengeIn,
    InviteAdminIn,
    LegalDocumentAdminOut,
    LegalDocumentIn,
    OptionalReasonIn,
    ReasonIn,
    RoleOut,
    SettingChangeOut,
    SettingIn,
    UpdateAdminIn,
)
from node.auth import sessions
from node.auth.principal import ADMIN_ROLE_PERMISSIONS, ADMIN_ROLES, AdminPrincipal
from node.errors import NotFound, Unauthorized
from node.merchants import kyc, service
from node.merchants import repository as repo
from node.merchants.schemas import (
    AuditLogOut,
    ChangePasswordIn,
    Data,
    DirectorOut,
    DocumentOut,
    LoginIn,
    OkOut,
    Page,
    PageMeta,
    RefreshIn,
    SecondFactorIn,
    SignedLinkOut,
    TokensOut,
    TotpSetupOut,
)

router = APIRouter(prefix="/v1/admin", tags=["admin"])


MerchantsRead = Annotated[AdminPrincipal, Depends(require_admin_permission("merchants:read"))]
MerchantsApprove = Annotated[AdminPrincipal, Depends(require_admin_permission("merchants:approve"))]
MerchantsReject = Annotated[AdminPrincipal, Depends(require_admin_permission("merchants:reject"))]
MerchantsManage = Annotated[AdminPrincipal, Depends(require_admin_permission("merchants:manage"))]
SystemManage = Annotated[AdminPrincipal, Depends(require_admin_permission("system:manage"))]
AuditRead = Annotated[AdminPrincipal, Depends(require_admin_permission("audit:read"))]


def _session_out(pair: Any, admin: Any, codes: list[str] | None = None) -> AdminSessionOut:
    return AdminSessionOut(access_token=pair.access_token, refresh_token=pair.refresh_token,
                           expires_in=pair.expires_in, admin=AdminOut.model_validate(admin),
                           must_change_password=admin.must_change_password, recovery_codes=codes)


# --- auth ----------------------------------------------------------------------------------------
@router.post("/auth/login", response_model=Data[AdminLoginOut], summary="Admin login, password step",
             dependencies=[Depends(rate_limit("login_ip"))])
async def admin_login(body: LoginIn, session: Session, settings: Settings, meta: RequestMeta, limiter: Limiter,
                      resources: Resources) -> Data[AdminLoginOut]:
    """Always answers with a challenge: 2FA is mandatory for admins."""
    await limiter.check("login_account", "admin:" + body.email.strip().lower())
    try:
        result = await accounts.login(session, settings, body.email, body.password)
    except Unauthorized:
        async with resources.db.unit_of_work() as own:
            await audit.record(own, action="admin.login.failed", actor_type="SYSTEM", meta=meta,
                               details={"email": body.email.strip().lower()[:320]})
        raise
    return Data(data=AdminLoginOut(two_factor_required=result.totp_enrolled,
                                   two_factor_setup_required=not result.totp_enrolled,
                                   challenge_token=result.challenge_token))


async def _totp_limit(limiter: Limiter, challenge_token: str) -> None:
    await limiter.check("totp", "admin:" + hashlib.sha256(challenge_token.encode()).hexdigest())


@router.post("/auth/2fa/setup", response_model=Data[TotpSetupOut], summary="Enrol TOTP during login",
             dependencies=[Depends(rate_limit("login_ip"))])
async def admin_totp_setup(body: ChallengeIn, session: Session, settings: Settings) -> Data[TotpSetupOut]:
    enrolment = await accounts.enrol_totp(session, settings, body.challenge_token)
    return Data(data=TotpSetupOut(secret=enrolment.secret, otpauth_uri=enrolment.uri, qr_svg=enrolment.qr_svg))


@router.post("/auth/2fa/confirm", response_model=Data[AdminSessionOut],
             summary="Confirm TOTP enrolment; returns tokens and 10 recovery codes",
             dependencies=[Depends(rate_limit("login_ip"))])
async def admin_totp_confirm(body: ChallengeCodeIn, session: Session, settings: Settings, meta: RequestMeta,
                             limiter: Limiter) -> Data[AdminSessionOut]:
    await _totp_limit(limiter, body.challenge_token)
    codes, pair, admin = await accounts.confirm_totp(session, settings, body.challenge_token, body.code, meta)
    return Data(data=_session_out(pair, admin, codes))


@router.post("/auth/2fa/verify", response_model=Data[AdminSessionOut], summary="Second step: TOTP or recovery code",
             dependencies=[Depends(rate_limit("login_ip"))])
async def admin_second_factor(body: SecondFactorIn, session: Session, settings: Settings, meta: RequestMeta,
                              limiter: Limiter) -> Data[AdminSessionOut]:
    await _totp_limit(limiter, body.challenge_token)
    pair, admin = await accounts.second_factor(session, settings, body.challenge_token, code=body.code,
                                               recovery_code=body.recovery_code, meta=meta)
    return Data(data=_session_out(pair, admin))


@router.post("/auth/refresh", response_model=Data[TokensOut], summary="Rotate the admin refresh token",
             dependencies=[Depends(rate_limit("login_ip"))])
async def admin_refresh(body: RefreshIn, session: Session, settings: Settings, meta: RequestMeta,
                        resources: Resources) -> Data[TokensOut]:
    try:
        pair = await accounts.refresh(session, settings, body.refresh_token)
    except sessions.RefreshReused as reused:
        async with resources.db.unit_of_work() as own:
            await accounts.revoke_reused_family(own, reused, meta)
        raise
    return Data(data=TokensOut(access_token=pair.access_token, refresh_token=pair.refresh_token,
                               expires_in=pair.expires_in))


@router.post("/auth/logout", response_model=Data[OkOut], summary="Admin logout")
async def admin_logout(body: RefreshIn, session: Session, meta: RequestMeta) -> Data[OkOut]:
    await accounts.logout(session, body.refresh_token, meta)
    return Data(data=OkOut())


@router.get("/auth/me", response_model=Data[AdminMeOut], summary="The logged-in admin")
async def admin_me(session: Session, admin: AdminUser) -> Data[AdminMeOut]:
    row = await accounts.get(session, admin.admin_id)
    return Data(data=AdminMeOut(admin=AdminOut.model_validate(row), permissions=sorted(admin.permissions)))


@router.post("/auth/change-password", response_model=Data[OkOut],
             summary="Change password (required first for invited admins)",
             dependencies=[Depends(rate_limit("password_ip"))])
async def admin_change_password(body: ChangePasswordIn, session: Session, admin: AdminUser,
                                meta: RequestMeta) -> Data[OkOut]:
    await accounts.change_password(session, admin.admin_id, body.current_password, body.new_password, meta)
    return Data(data=OkOut())


@router.post("/auth/accept-invite", response_model=Data[AdminOut], summary="Set the first password of an invite",
             dependencies=[Depends(rate_limit("password_ip"))])
async def admin_accept_invite(body: AcceptAdminInviteIn, session: Session, meta: RequestMeta) -> Data[AdminOut]:
    admin = await accounts.accept_invite(session, body.token, body.password, meta)
    return Data(data=AdminOut.model_validate(admin))


# --- admins and roles ----------------------------------------------------------------------------
@router.get("/users", response_model=Data[list[AdminOut]], summary="Admin users")
async def list_admins(session: Session, admin: SystemManage) -> Data[list[AdminOut]]:
    return Data(data=[AdminOut.model_validate(a) for a in await accounts.list_admins(session)])


@router.post("/users/invite", status_code=201, response_model=Data[AdminOut],
             summary="Invite an admin (must set a password and enrol 2FA)")
async def invite_admin(body: InviteAdminIn, session: Session, settings: Settings, admin: SystemManage,
                       meta: RequestMeta) -> Data[AdminOut]:
    row = await accounts.invite_admin(session, settings, email=str(body.email), name=body.name, role=body.role,
                                      invited_by=admin.admin_id, meta=meta)
    return Data(data=AdminOut.model_validate(row))


@router.patch("/users/{adminId}", response_model=Data[AdminOut], summary="Change an admin's role or active state")
async def update_admin(adminId: uuid.UUID, body: UpdateAdminIn, session: Session, admin: SystemManage,
                       meta: RequestMeta) -> Data[AdminOut]:
    row = await accounts.update_admin(session, adminId, role=body.role, is_active=body.is_active,
                                      actor_id=admin.admin_id, meta=meta)
    return Data(data=AdminOut.model_validate(row))


@router.get("/roles", response_model=Data[list[RoleOut]], summary="Admin roles and their permissions")
async def list_roles(admin: AdminUser) -> Data[list[RoleOut]]:
    return Data(data=[RoleOut(role=r, permissions=sorted(ADMIN_ROLE_PERMISSIONS[r])) for r in ADMIN_ROLES])


# --- merchants -----------------------------------------------------------------------------------
@router.get("/merchants", response_model=Page[AdminMerchantOut], summary="Merchants, filterable")
async def list_merchants(
    session: Session, admin: MerchantsRead,
    status: Annotated[str | None, Query(pattern="^(ACTIVE|INACTIVE|FROZEN|TERMINATED)$")] = None,
    kyc_status: Annotated[str | None, Query(alias="kycStatus",
                                            pattern="^(PENDING|INSTANT_ACCESS|UNDER_REVIEW|APPROVED|REJECTED)$")
                          ] = None,
    search: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$")] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(alias="perPage", ge=1, le=100)] = 20,
) -> Page[AdminMerchantOut]:
    rows, total = await repo.list_merchants(session, status=status, kyc_status=kyc_status, search=search,
                                            offset=(page - 1) * per_page, limit=per_page)
    return Page(data=[AdminMerchantOut.model_validate(m) for m in rows],
                meta=PageMeta(total=total, page=page, per_page=per_page))


@router.get("/merchants/{merchantId}", response_model=Data[AdminMerchantOut], summary="A merchant")
async def get_merchant(merchantId: uuid.UUID, session: Session, admin: MerchantsRead) -> Data[AdminMerchantOut]:
    return Data(data=AdminMerchantOut.model_validate(await service.get(session, merchantId)))


@router.get("/merchants/{merchantId}/directors", response_model=Data[list[DirectorOut]],
            summary="A merchant's directors")
async def merchant_directors(merchantId: uuid.UUID, session: Session,
                             admin: MerchantsRead) -> Data[list[DirectorOut]]:
    await service.get(session, merchantId)
    return Data(data=[DirectorOut.model_validate(d) for d in await repo.list_directors(session, merchantId)])


@router.get("/merchants/{merchantId}/documents", response_model=Data[list[DocumentOut]],
            summary="A merchant's KYC documents")
async def merchant_documents(merchantId: uuid.UUID, session: Session,
                             admin: MerchantsRead) -> Data[list[DocumentOut]]:
    await service.get(session, merchantId)
    return Data(data=[DocumentOut.model_validate(d) for d in await repo.list_documents(session, merchantId)])


@router.get("/merchants/{merchantId}/documents/{documentId}/link", response_model=Data[SignedLinkOut],
            summary="A short-lived download link for a merchant's document")
async def merchant_document_link(merchantId: uuid.UUID, documentId: uuid.UUID, session: Session,
                                 settings: Settings, admin: MerchantsRead, meta: RequestMeta) -> Data[SignedLinkOut]:
    document = await repo.get_document(session, merchantId, documentId)
    if document is None:
        raise NotFound("document not found")
    token, expires = kyc.download_token(settings, document)
    await audit.record(session, action="document.viewed", actor_type="ADMIN", actor_id=admin.admin_id,
                       merchant_id=merchantId, resource_type="document", resource_id=documentId, meta=meta)
    return Data(data=SignedLinkOut(url=kyc.download_url(settings, token), expires_at=expires))


@router.post("/merchants/{merchantId}/review", response_model=Data[AdminMerchantOut],
             summary="Start a KYC review (-> UNDER_REVIEW)")
async def review_merchant(merchantId: uuid.UUID, session: Session, admin: MerchantsApprove,
                          meta: RequestMeta) -> Data[AdminMerchantOut]:
    merchant = await service.start_review(session, merchantId, admin_id=admin.admin_id, meta=meta)
    return Data(data=AdminMerchantOut.model_validate(merchant))


@router.post("/merchants/{merchantId}/approve", response_model=Data[AdminMerchantOut],
             summary="Approve KYC (needs verified directors unless forced with a reason)")
async def approve_merchant(merchantId: uuid.UUID, body: ApproveIn, session: Session, settings: Settings,
                           admin: MerchantsApprove, meta: RequestMeta) -> Data[AdminMerchantOut]:
    merchant = await service.approve_kyc(session, settings, merchantId, admin_id=admin.admin_id, force=body.force,
                                         force_reason=body.force_reason, notes=body.notes, meta=meta)
    return Data(data=AdminMerchantOut.model_validate(merchant))


@router.post("/merchants/{merchantId}/reject", response_model=Data[AdminMerchantOut], summary="Reject KYC")
async def reject_merchant(merchantId: uuid.UUID, body: ReasonIn, session: Session, admin: MerchantsReject,
                          meta: RequestMeta) -> Data[AdminMerchantOut]:
    merchant = await service.reject_kyc(session, merchantId, admin_id=admin.admin_id, reason=body.reason,
                                        notes=body.notes, meta=meta)
    return Data(data=AdminMerchantOut.model_validate(merchant))


legacy = APIRouter(tags=["admin"])


def _status_route(path: str, target: str, summary: str) -> None:
    @legacy.post(f"/v1/merchants/{{merchantId}}/{path}", response_model=Data[AdminMerchantOut],
                 summary=f"{summary} (the original's path; admins only)", name=f"legacy_merchant_{path}")
    @router.post(f"/merchants/{{merchantId}}/{path}", response_model=Data[AdminMerchantOut], summary=summary,
                 name=f"merchant_{path}")
    async def change(merchantId: uuid.UUID, body: OptionalReasonIn, session: Session, admin: MerchantsManage,
                     meta: RequestMeta) -> Data[AdminMerchantOut]:
        merchant = await service.change_status(session, merchantId, target, reason=body.reason,
                                               actor_id=admin.admin_id, meta=meta)
        return Data(data=AdminMerchantOut.model_validate(merchant))


_status_route("freeze", "FROZEN", "Freeze (suspend): logins and API keys stop at once")
_status_route("unfreeze", "ACTIVE", "Unfreeze a frozen merchant")
_status_route("deactivate", "INACTIVE", "Deactivate")
_status_route("reactivate", "ACTIVE", "Reactivate an inactive merchant")
_status_route("terminate", "TERMINATED", "Terminate (final)")


# --- settings, legal, audit ----------------------------------------------------------------------
@router.get("/settings", response_model=Data[dict[str, Any]], summary="Platform settings")
async def get_settings(session: Session, admin: AdminUser) -> Data[dict[str, Any]]:
    return Data(data=await platform.get_settings(session))


@router.put("/settings/{key}", response_model=Data[Any], summary="Change one setting (kept in history)")
async def put_setting(key: str, body: SettingIn, session: Session, admin: SystemManage,
                      meta: RequestMeta) -> Data[Any]:
    return Data(data=await platform.put_setting(session, key, body.value, admin_id=admin.admin_id, meta=meta))


@router.get("/settings/history", response_model=Data[list[SettingChangeOut]], summary="Setting changes")
async def setting_history(
    session: Session, admin: AdminUser,
    key: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z_]*$")] = None,
) -> Data[list[SettingChangeOut]]:
    return Data(data=[SettingChangeOut.model_validate(c) for c in await platform.setting_history(session, key)])


@router.get("/legal-documents", response_model=Data[list[LegalDocumentAdminOut]], summary="All versions")
async def list_legal(session: Session, admin: AdminUser) -> Data[list[LegalDocumentAdminOut]]:
    docs = await platform.list_legal(session, current_only=False)
    return Data(data=[LegalDocumentAdminOut.model_validate(d) for d in docs])


@router.post("/legal-documents", status_code=201, response_model=Data[LegalDocumentAdminOut],
             summary="Publish a new version (becomes current; merchants must accept it)")
async def publish_legal(body: LegalDocumentIn, session: Session, admin: SystemManage,
                        meta: RequestMeta) -> Data[LegalDocumentAdminOut]:
    doc = await platform.publish_legal(session, kind=body.kind, title=body.title, content=body.content,
                                       admin_id=admin.admin_id, meta=meta)
    return Data(data=LegalDocumentAdminOut.model_validate(doc))


@router.get("/audit-logs", response_model=Page[AuditLogOut], summary="The audit log, newest first")
async def audit_logs(
    session: Session, admin: AuditRead,
    merchant_id: Annotated[uuid.UUID | None, Query(alias="merchantId")] = None,
    action: Annotated[str | None, Query(max_length=100, pattern=r"^[a-z0-9_.]*$")] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(alias="perPage", ge=1, le=100)] = 50,
) -> Page[AuditLogOut]:
    rows, total = await platform.audit_entries(session, merchant_id=merchant_id, action=action,
                                               offset=(page - 1) * per_page, limit=per_page)
    return Page(data=[AuditLogOut.of(r) for r in rows], meta=PageMeta(total=total, page=page, per_page=per_page))


@router.get("/audit-logs/verify", response_model=Data[AuditVerifyOut], summary="Check the audit log's hash chain")
async def audit_verify(session: Session, admin: AuditRead) -> Data[AuditVerifyOut]:
    result = await audit.verify(session)
    return Data(data=AuditVerifyOut(ok=result.ok, rows=result.rows, bad_row_id=result.bad_row_id,
                                    reason=result.reason))


# the original's paths for admin actions, now admin-only (there any merchant JWT could use them: defect 1)
legacy.add_api_route("/v1/merchants/{merchantId}/approve", approve_merchant, methods=["POST"],
                     response_model=Data[AdminMerchantOut], summary="Approve KYC (the original's path; admins only)")
legacy.add_api_route("/v1/merchants/{merchantId}/reject", reject_merchant, methods=["POST"],
                     response_model=Data[AdminMerchantOut], summary="Reject KYC (the original's path; admins only)")
legacy.add_api_route("/v1/audit-logs", audit_logs, methods=["GET"], response_model=Page[AuditLogOut],
                     summary="The audit log (the original's path; admins only)")
