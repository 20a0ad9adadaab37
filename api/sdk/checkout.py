"""``POST /v1/sdk/checkout/sessions``: a normal payment behind the hosted checkout page."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote_plus

from fastapi import APIRouter, Request

from api.deps import ApiKeyMerchant, Session, Settings
from api.payments_common import idempotent, json_body, require
from api.responses import JSON
from node.money import format_decimal, format_units
from node.payments import service
from node.payments.models import Payment
from node.payments.schemas import checkout_url, eip681, parse_payment_request, rfc3339

router = APIRouter(prefix="/v1/sdk/checkout", tags=["sdk"])


def session_url(public_url: str, p: Payment) -> str:
    """``<portal>/checkout/<id>`` + ``?successUrl=`` and then ``&cancelUrl=`` (form escaping; the
    cancel URL only with a success URL), as the original built it. The page itself redirects to the
    payment's stored URLs (the same values) and ignores its query: a link with another URL in it
    sends no one anywhere."""
    url = checkout_url(public_url, p)
    if p.success_url:
        url += "?successUrl=" + quote_plus(p.success_url, safe="")
        if p.cancel_url:
            url += "&cancelUrl=" + quote_plus(p.cancel_url, safe="")
    return url


def session_object(p: Payment, public_url: str) -> dict[str, Any]:
    uri = eip681(p)
    out: dict[str, Any] = {
        "id": f"cs_{p.id}", "paymentId": str(p.id), "url": session_url(public_url, p),
        "amount": format_decimal(p.amount), "currency": p.currency, "amountUsdt": format_units(p.amount_units),
        "status": "open", "qrContent": uri, "deepLink": uri, "merchantTradeNo": p.merchant_trade_no or "",
        "successUrl": p.success_url or "", "cancelUrl": p.cancel_url or "", "expiresAt": rfc3339(p.expire_at),
        "createdAt": rfc3339(p.created_at),
    }
    if p.exchange_rate is not None:
        out["exchangeRate"] = format_decimal(p.exchange_rate)
    return out


@router.post("/sessions", status_code=201, summary="Create a checkout session")
async def create_session(request: Request, session: Session, settings: Settings, principal: ApiKeyMerchant) -> JSON:
    require(principal, "payments:write")

    async def run() -> tuple[int, dict[str, Any]]:
        raw = await json_body(request)
        body = parse_payment_request(raw, default_currency="LKR", amount_required_message="amount is required")
        body.expire_at = None  # sessions use expiresInMinutes only
        if body.merchant_trade_no is None:
            body.merchant_trade_no = "cs_" + secrets.token_hex(4)
        payment = await service.create(session, settings, principal, body, source="CHECKOUT")
        return 201, {"data": session_object(payment, settings.public_url)}

    return await idempotent(request, session, principal, "sdk.checkout", run)
