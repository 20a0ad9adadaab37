"""API keys of the caller's merchant: the secret is shown once, at creation."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import RequestMeta, Session, Settings, require_portal_permission
from node.auth.principal import MerchantPrincipal
from node.merchants import api_keys
from node.merchants import repository as repo
from node.merchants.schemas import ApiKeyCreatedOut, ApiKeyIn, ApiKeyOut, Data, RevokeIn

router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])

Read = Annotated[MerchantPrincipal, Depends(require_portal_permission("api_keys:read"))]
Write = Annotated[MerchantPrincipal, Depends(require_portal_permission("api_keys:write"))]


@router.get("", response_model=Data[list[ApiKeyOut]], summary="API keys (without secrets)")
async def list_keys(session: Session, principal: Read) -> Data[list[ApiKeyOut]]:
    return Data(data=[ApiKeyOut.model_validate(k) for k in await repo.list_keys(session, principal.merchant_id)])


@router.post("", status_code=201, response_model=Data[ApiKeyCreatedOut],
             summary="Create a live or test key; the secret is in this answer only")
async def create_key(body: ApiKeyIn, session: Session, settings: Settings, principal: Write,
                     meta: RequestMeta) -> Data[ApiKeyCreatedOut]:
    created = await api_keys.create_key(session, settings, principal.merchant_id, mode=body.mode, name=body.name,
                                        allowed_ips=body.allowed_ips, created_by=principal.user_id, meta=meta)
    out = ApiKeyCreatedOut.model_validate({**ApiKeyOut.model_validate(created.key).model_dump(),
                                           "secret": created.secret, "credential": created.sdk_credential})
    return Data(data=out)


async def _revoke(session: Session, principal: MerchantPrincipal, key_pk: uuid.UUID, reason: str | None,
                  meta: RequestMeta) -> ApiKeyOut:
    key = await api_keys.revoke_key(session, principal.merchant_id, key_pk, reason=reason,
                                    actor_id=principal.user_id, meta=meta)
    return ApiKeyOut.model_validate(key)


@router.post("/{keyId}/revoke", response_model=Data[ApiKeyOut], summary="Revoke a key, with a reason; at once")
async def revoke_key(keyId: uuid.UUID, body: RevokeIn, session: Session, principal: Write,
                     meta: RequestMeta) -> Data[ApiKeyOut]:
    return Data(data=await _revoke(session, principal, keyId, body.reason, meta))


@router.delete("/{keyId}", response_model=Data[ApiKeyOut], summary="Revoke a key")
async def delete_key(keyId: uuid.UUID, session: Session, principal: Write, meta: RequestMeta) -> Data[ApiKeyOut]:
    return Data(data=await _revoke(session, principal, keyId, None, meta))
