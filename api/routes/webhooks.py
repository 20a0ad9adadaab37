"""Webhook endpoints, keys and the delivery log of the caller's merchant (portal and API keys)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.deps import RequestMeta, Session, Settings, require_permission
from node.admin import audit
from node.auth.principal import MerchantPrincipal
from node.errors import Conflict
from node.webhooks import repository as repo
from node.webhooks import service
from node.webhooks.errors import DeliveryFailed
from node.webhooks.schemas import (
    EndpointIn,
    EndpointPatch,
    ReplayIn,
    delivery_detail_out,
    delivery_out,
    endpoint_out,
    rfc3339,
)
from node.webhooks.sender import WebhookSender
from node.webhooks.signing import public_key_b64

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

Read = Annotated[MerchantPrincipal, Depends(require_permission("webhooks:read"))]
Write = Annotated[MerchantPrincipal, Depends(require_permission("webhooks:write"))]


async def _audit(session: Session, principal: MerchantPrincipal, meta: RequestMeta, action: str,
                 resource_id: object, changes: dict[str, Any] | None = None) -> None:
    await audit.record(
        session, action=action, actor_type="API_KEY" if principal.is_api_key else "MERCHANT_USER",
        actor_id=principal.api_key_id if principal.is_api_key else principal.user_id,
        merchant_id=principal.merchant_id, resource_type="webhook_endpoint", resource_id=resource_id,
        changes=changes, meta=meta,
    )


@router.get("/endpoints", summary="Webhook endpoints")
async def list_endpoints(session: Session, principal: Read) -> dict[str, Any]:
    return {"data": [endpoint_out(e) for e in await service.list_endpoints(session, principal.merchant_id)]}


@router.post("/endpoints", status_code=201, summary="Register an endpoint")
async def create_endpoint(body: EndpointIn, session: Session, settings: Settings, principal: Write,
                          meta: RequestMeta) -> dict[str, Any]:
    endpoint = await service.create_endpoint(session, settings, principal.merchant_id, body)
    await _audit(session, principal, meta, "webhook_endpoint.created", endpoint.id,
                 {"url": [None, endpoint.url], "events": [None, endpoint.events]})
    return {"data": endpoint_out(endpoint)}


@router.get("/endpoints/{endpointId}", summary="An endpoint")
async def get_endpoint(endpointId: uuid.UUID, session: Session, principal: Read) -> dict[str, Any]:
    return {"data": endpoint_out(await service.get_endpoint(session, principal.merchant_id, endpointId))}


@router.patch("/endpoints/{endpointId}", summary="Change an endpoint")
async def update_endpoint(endpointId: uuid.UUID, body: EndpointPatch, session: Session, settings: Settings,
                          principal: Write, meta: RequestMeta) -> dict[str, Any]:
    before = endpoint_out(await service.get_endpoint(session, principal.merchant_id, endpointId))
    endpoint = await service.update_endpoint(session, settings, principal.merchant_id, endpointId, body)
    after = endpoint_out(endpoint)
    await _audit(session, principal, meta, "webhook_endpoint.updated", endpoint.id, {
        key: [before[key], after[key]] for key in ("url", "events", "mode", "enabled", "description")
        if before[key] != after[key]})
    return {"data": after}


@router.delete("/endpoints/{endpointId}", summary="Remove an endpoint")
async def delete_endpoint(endpointId: uuid.UUID, session: Session, principal: Write,
                          meta: RequestMeta) -> dict[str, Any]:
    await service.delete_endpoint(session, principal.merchant_id, endpointId)
    await _audit(session, principal, meta, "webhook_endpoint.deleted", endpointId)
    return {"data": {"ok": True}}


@router.post("/endpoints/{endpointId}/test", summary="Send the test event to an endpoint now")
async def test_endpoint(endpointId: uuid.UUID, session: Session, settings: Settings,
                        principal: Write) -> dict[str, Any]:
    sender = WebhookSender(settings)
    try:
        delivery, outcome = await service.send_test(session, settings, sender, principal.merchant_id, endpointId)
    except DeliveryFailed as exc:
        # the SDK route keeps the original's 500 DELIVERY_FAILED; here a disabled endpoint is the client's state
        raise Conflict(exc.message, code="ENDPOINT_DISABLED") from None
    finally:
        await sender.aclose()
    return {"data": {**delivery_out(delivery), "success": outcome.success, "deliveryTime": outcome.latency_ms}}


@router.get("/public-key", summary="The merchant's ED25519 webhook public keys")
async def public_keys(session: Session, principal: Read) -> dict[str, Any]:
    keys = await service.public_keys(session, principal.merchant_id)
    return {"data": {
        "publicKey": public_key_b64(keys[0].public_key) if keys and keys[0].retired_at is None else None,
        "keys": [{"publicKey": public_key_b64(k.public_key), "active": k.retired_at is None,
                  "createdAt": rfc3339(k.created_at), "validUntil": rfc3339(k.valid_until)} for k in keys],
    }}


@router.post("/keys/rotate", summary="A new signing key; the old one stays valid for the grace period")
async def rotate_key(session: Session, settings: Settings, principal: Write, meta: RequestMeta) -> dict[str, Any]:
    key = await service.rotate_key(session, settings, principal.merchant_id)
    await audit.record(
        session, action="webhook_key.rotated", actor_type="API_KEY" if principal.is_api_key else "MERCHANT_USER",
        actor_id=principal.api_key_id if principal.is_api_key else principal.user_id,
        merchant_id=principal.merchant_id, resource_type="webhook_key", resource_id=key.id, meta=meta,
    )
    return {"data": {"publicKey": public_key_b64(key.public_key), "createdAt": rfc3339(key.created_at)}}


@router.get("/deliveries", summary="The delivery log")
async def list_deliveries(
    session: Session, principal: Read, status: str | None = None, endpointId: uuid.UUID | None = None,
    eventType: str | None = None, since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    page: Annotated[int, Query(ge=1)] = 1, perPage: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    rows, total = await repo.list_deliveries(
        session, principal.merchant_id, status=status.upper() if status else None, endpoint_id=endpointId,
        event_type=eventType, since=since, until=until, offset=(page - 1) * perPage, limit=perPage,
    )
    return {"data": [delivery_out(d) for d in rows], "meta": {"total": total, "page": page, "perPage": perPage}}


@router.post("/deliveries/replay", summary="Send again every undelivered (or every) delivery of a time range")
async def replay(body: ReplayIn, session: Session, principal: Write) -> dict[str, Any]:
    return {"data": {"replayed": await service.replay(session, principal.merchant_id, body)}}


@router.get("/deliveries/{deliveryId}", summary="A delivery with its payload and every attempt")
async def get_delivery(deliveryId: uuid.UUID, session: Session, principal: Read) -> dict[str, Any]:
    delivery = await service.get_delivery(session, principal.merchant_id, deliveryId)
    return {"data": delivery_detail_out(delivery, list(await repo.attempts_of(session, delivery.id)))}


@router.post("/deliveries/{deliveryId}/retry", summary="Send one delivery again now (same webhook id)")
async def retry(deliveryId: uuid.UUID, session: Session, principal: Write) -> dict[str, Any]:
    return {"data": delivery_out(await service.retry_delivery(session, principal.merchant_id, deliveryId))}
