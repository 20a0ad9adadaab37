"""The wire protocol's webhook routes (sdk-wire-protocol.md section 4), scoped to the key's merchant."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from api.deps import ApiKeyMerchant, Session, Settings
from api.payments_common import json_body
from api.responses import JSON
from node.errors import Forbidden
from node.webhooks import service
from node.webhooks.models import DeliveryStatus
from node.webhooks.schemas import rfc3339
from node.webhooks.sender import WebhookSender
from node.webhooks.signing import public_key_b64

router = APIRouter(prefix="/v1/sdk/webhooks", tags=["sdk"])


class ConfigureIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str | None = None
    events: Any = None  # accepted and ignored, as the original does
    secret: Any = None


def _writable(principal: Any) -> None:
    if not principal.can("webhooks:write"):
        raise Forbidden("missing permission webhooks:write")


@router.post("/configure", status_code=201, summary="Configure the webhook (a new key pair on every call)",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": ConfigureIn.model_json_schema()}}}})
async def configure(request: Request, session: Session, settings: Settings, principal: ApiKeyMerchant) -> JSON:
    _writable(principal)
    # the body is JSON whatever its Content-Type says (the original reads it so; a client may omit it)
    raw = await json_body(request)
    url = raw.get("url") if isinstance(raw, dict) else None
    endpoint, key = await service.configure_sdk(session, settings, principal.merchant_id,
                                                url if isinstance(url, str) else None, mode=principal.mode)
    return JSON({"data": {
        "id": str(endpoint.id), "url": endpoint.url, "publicKey": public_key_b64(key.public_key),
        "events": ["payment.*"], "isActive": True, "createdAt": rfc3339(key.created_at),
    }}, status_code=201)


@router.get("/public-key", summary="The webhook public key (base64 of the raw 32 bytes)")
async def public_key(session: Session, principal: ApiKeyMerchant) -> JSON:
    key = await service.sdk_public_key(session, principal.merchant_id)
    return JSON({"data": {"publicKey": public_key_b64(key.public_key)}})


@router.post("/test", summary="Deliver the test event now")
async def test(session: Session, settings: Settings, principal: ApiKeyMerchant) -> JSON:
    _writable(principal)
    sender = WebhookSender(settings)
    try:
        delivery, outcome = await service.send_test(session, settings, sender, principal.merchant_id)
    finally:
        await sender.aclose()
    delivered = delivery.status == DeliveryStatus.delivered
    return JSON({"data": {
        "success": outcome.success, "deliveryId": str(delivery.id),
        "status": "DELIVERED" if delivered else "PENDING", "deliveryTime": outcome.latency_ms,
        "message": "Test webhook delivered",  # the spec's words whatever the outcome: `success` and `status` tell
    }})
