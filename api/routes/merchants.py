"""The merchant's own account: profile, KYC (submission, directors, documents), legal acceptance,
its audit log; and the public director verification form."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import Response

from api.deps import RequestMeta, Session, Settings, rate_limit, require_permission, require_portal_permission
from node.admin import platform
from node.auth.principal import MerchantPrincipal
from node.errors import Forbidden, NotFound
from node.merchants import kyc, service
from node.merchants import repository as repo
from node.merchants.schemas import (
    AcceptLegalIn,
    AuditLogOut,
    Data,
    DirectorForm,
    DirectorIn,
    DirectorInvitationOut,
    DirectorOut,
    DirectorVerifyOut,
    DocumentOut,
    KycSubmitOut,
    LegalDocumentOut,
    MerchantOut,
    MerchantUpdateIn,
    OkOut,
    Page,
    PageMeta,
    SignedLinkOut,
)
from node.storage import FileTooLarge

router = APIRouter(tags=["merchants"])

MerchantRead = Annotated[MerchantPrincipal, Depends(require_permission("merchant:read"))]
MerchantWrite = Annotated[MerchantPrincipal, Depends(require_portal_permission("merchant:write"))]
KycRead = Annotated[MerchantPrincipal, Depends(require_portal_permission("kyc:read"))]
KycWrite = Annotated[MerchantPrincipal, Depends(require_portal_permission("kyc:write"))]
AuditRead = Annotated[MerchantPrincipal, Depends(require_portal_permission("audit:read"))]


def _own(principal: MerchantPrincipal, merchant_id: uuid.UUID) -> None:
    # another merchant's id is simply not found (original defect 2: IDOR on /v1/merchants/{id})
    if merchant_id != principal.merchant_id:
        raise NotFound("merchant not found")


async def _read_upload(file: UploadFile, max_bytes: int) -> bytes:
    data = await file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLarge(f"file is larger than {max_bytes // (1024 * 1024)} MB")
    return data


@router.get("/v1/merchants/me", response_model=Data[MerchantOut], summary="The caller's merchant")
async def get_me(session: Session, principal: MerchantRead) -> Data[MerchantOut]:
    return Data(data=MerchantOut.model_validate(await service.get(session, principal.merchant_id)))


@router.get("/v1/merchants/{merchantId}", response_model=Data[MerchantOut], summary="A merchant (own only)")
async def get_merchant(merchantId: uuid.UUID, session: Session, principal: MerchantRead) -> Data[MerchantOut]:
    _own(principal, merchantId)
    return Data(data=MerchantOut.model_validate(await service.get(session, merchantId)))


async def _update(session: Session, settings: Settings, principal: MerchantPrincipal, body: MerchantUpdateIn,
                  meta: RequestMeta) -> MerchantOut:
    values = body.model_dump(exclude_unset=True, exclude={"submit_kyc"})
    merchant = await service.update_profile(session, principal.merchant_id, values, actor_id=principal.user_id,
                                            meta=meta)
    if body.submit_kyc:
        if not principal.can("kyc:write"):
            raise Forbidden("missing permission kyc:write")
        await kyc.submit(session, settings, principal.merchant_id, user_id=principal.user_id, meta=meta)
    return MerchantOut.model_validate(merchant)


@router.patch("/v1/merchants/me", response_model=Data[MerchantOut], summary="Update business details and bank account")
async def update_me(body: MerchantUpdateIn, session: Session, settings: Settings, principal: MerchantWrite,
                    meta: RequestMeta) -> Data[MerchantOut]:
    return Data(data=await _update(session, settings, principal, body, meta))


@router.put("/v1/merchants/{merchantId}", response_model=Data[MerchantOut],
            summary="Update own merchant (the original's route; `submitKyc: true` submits KYC)")
async def update_merchant(merchantId: uuid.UUID, body: MerchantUpdateIn, session: Session,
                          settings: Settings, principal: MerchantWrite, meta: RequestMeta) -> Data[MerchantOut]:
    _own(principal, merchantId)
    return Data(data=await _update(session, settings, principal, body, meta))


@router.post("/v1/merchants/me/kyc/submit", response_model=Data[KycSubmitOut],
             summary="Submit KYC: PENDING -> INSTANT_ACCESS; INSTANT_ACCESS or REJECTED -> UNDER_REVIEW")
async def submit_kyc(session: Session, settings: Settings, principal: KycWrite,
                     meta: RequestMeta) -> Data[KycSubmitOut]:
    status = await kyc.submit(session, settings, principal.merchant_id, user_id=principal.user_id, meta=meta)
    return Data(data=KycSubmitOut(kyc_status=status))


@router.get("/v1/merchants/me/directors", response_model=Data[list[DirectorOut]], summary="Directors")
async def list_directors(session: Session, principal: KycRead) -> Data[list[DirectorOut]]:
    rows = await repo.list_directors(session, principal.merchant_id)
    return Data(data=[DirectorOut.model_validate(d) for d in rows])


@router.post("/v1/merchants/me/directors", status_code=201, response_model=Data[DirectorOut],
             summary="Add a director (at most 10); e-mails a single-use verification link valid 7 days")
async def add_director(body: DirectorIn, session: Session, settings: Settings, principal: KycWrite,
                       meta: RequestMeta) -> Data[DirectorOut]:
    director = await kyc.add_director(session, settings, principal.merchant_id, name=body.name,
                                      email=str(body.email), user_id=principal.user_id, meta=meta)
    return Data(data=DirectorOut.model_validate(director))


@router.post("/v1/merchants/me/directors/{directorId}/resend", response_model=Data[DirectorOut],
             summary="Send a new verification link (the old one stops working)")
async def resend_director(directorId: uuid.UUID, session: Session, settings: Settings,
                          principal: KycWrite) -> Data[DirectorOut]:
    director = await kyc.resend_link(session, settings, principal.merchant_id, directorId)
    return Data(data=DirectorOut.model_validate(director))


@router.delete("/v1/merchants/me/directors/{directorId}", response_model=Data[OkOut], summary="Remove a director")
async def remove_director(directorId: uuid.UUID, session: Session, principal: KycWrite,
                          meta: RequestMeta) -> Data[OkOut]:
    await kyc.remove_director(session, principal.merchant_id, directorId, user_id=principal.user_id, meta=meta)
    return Data(data=OkOut())


@router.post("/v1/uploads", status_code=201, response_model=Data[DocumentOut],
             summary="Upload a KYC document (PDF, PNG or JPEG; 32 MB; type sniffed from the content)")
async def upload(session: Session, settings: Settings, principal: KycWrite, meta: RequestMeta,
                 file: Annotated[UploadFile, File()], category: Annotated[str, Form(max_length=50)]
                 ) -> Data[DocumentOut]:
    data = await _read_upload(file, settings.upload_max_bytes)
    document = await kyc.upload_document(session, settings, principal.merchant_id, category=category, data=data,
                                         file_name=file.filename, user_id=principal.user_id, meta=meta)
    return Data(data=DocumentOut.model_validate(document))


@router.get("/v1/merchants/me/documents", response_model=Data[list[DocumentOut]], summary="Uploaded documents")
async def list_documents(session: Session, principal: KycRead) -> Data[list[DocumentOut]]:
    rows = await repo.list_documents(session, principal.merchant_id)
    return Data(data=[DocumentOut.model_validate(d) for d in rows])


# the original's paths, now ownership-checked (defect 2)
@router.get("/v1/merchants/{merchantId}/documents", response_model=Data[list[DocumentOut]],
            summary="Uploaded documents (own merchant only)")
async def list_documents_by_id(merchantId: uuid.UUID, session: Session, principal: KycRead) -> Data[list[DocumentOut]]:
    _own(principal, merchantId)
    return await list_documents(session, principal)


@router.get("/v1/merchants/{merchantId}/directors", response_model=Data[list[DirectorOut]],
            summary="Directors (own merchant only)")
async def list_directors_by_id(merchantId: uuid.UUID, session: Session, principal: KycRead) -> Data[list[DirectorOut]]:
    _own(principal, merchantId)
    return await list_directors(session, principal)


@router.post("/v1/merchants/{merchantId}/directors", status_code=201, response_model=Data[DirectorOut],
             summary="Add a director (own merchant only)")
async def add_director_by_id(merchantId: uuid.UUID, body: DirectorIn, session: Session, settings: Settings,
                             principal: KycWrite, meta: RequestMeta) -> Data[DirectorOut]:
    _own(principal, merchantId)
    return await add_director(body, session, settings, principal, meta)


@router.get("/v1/documents/{documentId}/link", response_model=Data[SignedLinkOut],
            summary="A download link for an own document, valid for a few minutes")
async def document_link(documentId: uuid.UUID, session: Session, settings: Settings,
                        principal: KycRead) -> Data[SignedLinkOut]:
    document = await repo.get_document(session, principal.merchant_id, documentId)
    if document is None:
        raise NotFound("document not found")
    token, expires = kyc.download_token(settings, document)
    return Data(data=SignedLinkOut(url=kyc.download_url(settings, token), expires_at=expires))


@router.get("/v1/documents/download", summary="Download through a signed link", response_class=Response,
            responses={200: {"content": {"application/pdf": {}, "image/png": {}, "image/jpeg": {}}}},
            dependencies=[Depends(rate_limit("public_ip"))])
async def download(token: Annotated[str, Query(min_length=1, max_length=2000)], session: Session,
                   settings: Settings) -> Response:
    document, data = await kyc.open_download(session, settings, token)
    return Response(data, media_type=document.content_type, headers={
        "Content-Disposition": f'attachment; filename="{document.id}"', "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
    })


@router.get("/v1/public/directors/verify/{token}", response_model=Data[DirectorInvitationOut],
            summary="Public: who is asked to verify", dependencies=[Depends(rate_limit("public_ip"))])
async def director_invitation(token: str, session: Session) -> Data[DirectorInvitationOut]:
    invitation = await kyc.director_invitation(session, token)
    return Data(data=DirectorInvitationOut(director_name=invitation.director_name,
                                           business_name=invitation.business_name,
                                           expires_at=invitation.expires_at))


@router.post("/v1/public/directors/verify/{token}", response_model=Data[DirectorVerifyOut],
             summary="Public: the director's identity details, consent and a document (10 MB)",
             dependencies=[Depends(rate_limit("public_ip"))])
async def verify_director(
    token: str, session: Session, settings: Settings, meta: RequestMeta,
    full_name: Annotated[str, Form(alias="fullName", min_length=1, max_length=200)],
    date_of_birth: Annotated[date, Form(alias="dateOfBirth")],
    id_number: Annotated[str, Form(alias="idNumber", min_length=4, max_length=50)],
    phone: Annotated[str, Form(min_length=5, max_length=40)],
    address: Annotated[str, Form(min_length=1, max_length=300)],
    consent: Annotated[bool, Form()],
    document: Annotated[UploadFile, File()],
) -> Data[DirectorVerifyOut]:
    DirectorForm(full_name=full_name, date_of_birth=date_of_birth, id_number=id_number, phone=phone,
                 address=address, consent=consent)
    data = await _read_upload(document, settings.director_document_max_bytes)
    await kyc.verify_director(session, settings, token, full_name=full_name, date_of_birth=date_of_birth,
                              id_number=id_number, phone=phone, address=address, consent=consent,
                              document=data, file_name=document.filename, meta=meta)
    return Data(data=DirectorVerifyOut(status="VERIFIED"))


@router.get("/v1/legal-documents/current", response_model=Data[list[LegalDocumentOut]],
            summary="Current legal documents and whether this merchant accepted each")
async def current_legal(session: Session, principal: MerchantRead) -> Data[list[LegalDocumentOut]]:
    accepted = await platform.accepted_ids(session, principal.merchant_id)
    out = []
    for doc in await platform.list_legal(session, current_only=True):
        item = LegalDocumentOut.model_validate(doc)
        item.accepted = doc.id in accepted
        out.append(item)
    return Data(data=out)


@router.post("/v1/legal-documents/accept", response_model=Data[OkOut], summary="Accept a current legal document")
async def accept_legal(body: AcceptLegalIn, session: Session, principal: MerchantWrite,
                       meta: RequestMeta) -> Data[OkOut]:
    await platform.accept_legal(session, principal.merchant_id, body.document_id, user_id=principal.user_id,
                                meta=meta)
    return Data(data=OkOut())


@router.get("/v1/merchant/audit-logs", response_model=Page[AuditLogOut], summary="This merchant's audit log")
async def merchant_audit_logs(session: Session, principal: AuditRead,
                              page: Annotated[int, Query(ge=1, le=100000)] = 1,
                              per_page: Annotated[int, Query(alias="perPage", ge=1, le=100)] = 20,
                              ) -> Page[AuditLogOut]:
    rows, total = await platform.audit_entries(session, merchant_id=principal.merchant_id,
                                               offset=(page - 1) * per_page, limit=per_page)
    return Page(data=[AuditLogOut.of(r) for r in rows], meta=PageMeta(total=total, page=page, per_page=per_page))

