"""Payments: merchant REST (``/v1/payments``, JWT or HMAC), the public checkout API and pages
(``/v1/payments/{id}/checkout``, ``/checkout/{id}``), QR images, the test-chain simulator."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from redis.exceptions import RedisError

from api.deps import Resources, Session, Settings, rate_limit, require_permission
from api.payments_common import idempotent, json_body
from api.responses import JSON
from node.auth.principal import MerchantPrincipal
from node.config import Settings as NodeSettings
from node.errors import Conflict, NodeError, NotFound, ValidationFailed
from node.merchants import service as merchants
from node.money import format_decimal, format_units
from node.payments import onchain, refunds, service, states, tasks
from node.payments.models import Payment
from node.payments.schemas import (
    STATES_OF_WIRE,
    checkout_object,
    eip681,
    parse_payment_request,
    parse_time,
    parse_uuid,
    wire_status,
)
from node.resources import Resources as NodeResources
from node.settlement.errors import InvalidAmount
from node.settlement.service import parse_amount as parse_usdt_amount

router = APIRouter(tags=["payments"])
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parents[1] / "templates"))
TEMPLATES.env.filters["decimal"] = format_decimal  # 1500, not Decimal.normalize()'s 1.5E+3

Reader = Annotated[MerchantPrincipal, Depends(require_permission("payments:read"))]
Writer = Annotated[MerchantPrincipal, Depends(require_permission("payments:write"))]
Refunder = Annotated[MerchantPrincipal, Depends(require_permission("refunds:write"))]


# ------------------------------------------------------------------ merchant REST


@router.post("/v1/payments", status_code=201, summary="Create a payment")
async def create_payment(request: Request, session: Session, settings: Settings, principal: Writer) -> JSON:
    async def run() -> tuple[int, dict[str, Any]]:
        body = parse_payment_request(await json_body(request))
        created = await service.create_payment(session, settings, principal, body, source="API", sole_write=True)
        return 201, {"data": created.wire}

    return await idempotent(request, session, principal, "payments", run)


def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params

    def when(name: str) -> datetime | None:
        return parse_time(q[name], name, prefix="") if q.get(name) else None

    status = q.get("status")
    statuses = None
    if status:
        statuses = STATES_OF_WIRE.get(status.upper()) or ((status,) if status in STATES_OF_WIRE_INTERNAL else None)
        if statuses is None:
            raise ValidationFailed(f"unknown status {status[:30]}")
    branch = q.get("branchId")
    mode = q.get("mode")
    if mode not in (None, "live", "test"):
        raise ValidationFailed("mode must be live or test")
    search = q.get("search") or None
    if search is not None:
        service.check_search(search)  # here too: before the export's answer starts
    return {"statuses": statuses, "search": search,
            "branch_id": parse_uuid(branch, "invalid branchId") if branch else None,
            "date_from": when("dateFrom"), "date_to": when("dateTo"), "mode": mode}


STATES_OF_WIRE_INTERNAL = {s for states_ in STATES_OF_WIRE.values() for s in states_}


MAX_PAGE = 1_000_000_000


def _page(request: Request) -> tuple[int, int]:
    try:
        page = max(1, int(request.query_params.get("page", "1")))
        per_page = min(100, max(1, int(request.query_params.get("perPage", "20"))))
    except ValueError as exc:
        raise ValidationFailed("page and perPage must be whole numbers") from exc
    if page > MAX_PAGE:
        raise ValidationFailed(f"page must be at most {MAX_PAGE}")
    return page, per_page


@router.get("/v1/payments", summary="List payments (filters, search, pagination)")
async def list_payments(request: Request, session: Session, settings: Settings, principal: Reader) -> JSON:
    page, per_page = _page(request)
    rows, total = await service.list_payments(session, principal, page=page, per_page=per_page, **_filters(request))
    return JSON({"data": await states.wire_objects(session, settings.public_url, rows),
                 "meta": {"total": total, "page": page, "perPage": per_page}})


CSV_COLUMNS = ("paymentNo", "id", "createdAt", "status", "state", "amount", "currency", "amountUsdt", "amountLkr",
               "merchantTradeNo", "customerEmail", "txHash", "paidAt", "mode")


@router.get("/v1/payments/export.csv", summary="Export payments as CSV (same filters)")
async def export_csv(request: Request, settings: Settings, resources: Resources, principal: Reader
                     ) -> StreamingResponse:
    """Every payment the filters select, streamed 1,000 rows at a time (keyset pages, newest first):
    no row limit, constant memory."""
    filters = _filters(request)  # refused before the answer starts

    async def lines() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        after = None
        while True:
            async with resources.db.unit_of_work() as session:
                rows = await service.export_page(session, principal, after=after, limit=1000, **filters)
                for obj in await states.wire_objects(session, settings.public_url, rows):
                    # a leading = + - @ would run as a formula in a spreadsheet
                    writer.writerow([_cell(obj.get(c, "")) for c in CSV_COLUMNS])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if len(rows) < 1000:
                return
            after = (rows[-1].created_at, rows[-1].id)

    return StreamingResponse(lines(), media_type="text/csv",
                             headers={"Content-Disposition": 'attachment; filename="payments.csv"'})


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@router.get("/v1/payments/{paymentId}", summary="Get a payment")
async def get_payment(paymentId: str, session: Session, settings: Settings, principal: Reader) -> JSON:
    payment = await service.get_owned(session, principal, parse_uuid(paymentId))
    return JSON({"data": await states.wire_object(session, settings.public_url, payment)})


@router.get("/v1/payments/{paymentId}/intent", summary="The signed on-chain intent (for wallets)")
async def get_intent(paymentId: str, session: Session, settings: Settings, principal: Reader) -> JSON:
    payment = await service.get_owned(session, principal, parse_uuid(paymentId))
    return JSON({"data": _intent_json(payment)})


def _intent_json(p: Any) -> dict[str, Any]:
    intent = service.intent_of(p)
    dep_gateway = None
    return {
        "paymentId": "0x" + intent.payment_id.hex(), "merchantId": "0x" + intent.merchant_id.hex(),
        "token": p.token, "amount": str(intent.amount), "fee": str(intent.fee), "fiatAmount": str(intent.fiat_amount),
        "rate": str(intent.rate), "deadline": intent.deadline, "signature": "0x" + bytes(p.signature).hex(),
        "chainId": p.chain_id, "gateway": dep_gateway,
    }


@router.post("/v1/payments/{paymentId}/refunds", status_code=201, summary="Refund all or part of a payment")
async def create_refund(paymentId: str, request: Request, session: Session, settings: Settings,
                        principal: Refunder) -> JSON:
    """To the payer's address by default; another address only from a portal user (or for a payment
    paid by transfer, where it is required), and then an administrator approves it first."""
    payment_id = parse_uuid(paymentId)

    async def run() -> tuple[int, dict[str, Any]]:
        body = await json_body(request)
        body = {} if body is None else body
        if not isinstance(body, dict):
            raise ValidationFailed("body must be a JSON object")
        amount = None
        if body.get("amount") not in (None, ""):
            raw = body["amount"]
            if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
                raise ValidationFailed("amount must be a decimal USDT amount")
            try:  # (what settlement takes: no digit past the 18th is dropped silently)
                amount = parse_usdt_amount(str(raw))
            except InvalidAmount as exc:
                raise ValidationFailed(exc.message) from None
        to = body.get("toAddress")
        if to is not None and not isinstance(to, str):
            raise ValidationFailed("toAddress must be a string")
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ValidationFailed("reason must be a string")
        payment = await service.get_owned(session, principal, payment_id, for_update=True)
        actor = f"key:{principal.api_key_id}" if principal.api_key_id else f"user:{principal.user_id}"
        refund = await refunds.request_refund(
            session, settings, payment, amount_units=amount, to_address=to, reason=reason,
            requested_by=actor, by_portal_user=not principal.is_api_key and principal.user_id is not None,
            idempotency_key=request.headers.get("idempotency-key"),
            key_mode=principal.mode if principal.is_api_key else None)
        return 201, {"data": refunds.refund_object(refund)}

    return await idempotent(request, session, principal, "refunds", run, subject=str(payment_id))


@router.get("/v1/payments/{paymentId}/refunds", summary="A payment's refunds")
async def list_refunds(paymentId: str, session: Session, principal: Reader) -> JSON:
    payment = await service.get_owned(session, principal, parse_uuid(paymentId))
    return JSON({"data": [refunds.refund_object(r) for r in await refunds.list_for_payment(session, payment.id)]})


@router.post("/v1/payments/{paymentId}/late/accept", summary="Accept money that arrived after expiry")
async def accept_late(paymentId: str, session: Session, settings: Settings, principal: Writer) -> JSON:
    payment = await service.get_owned(session, principal, parse_uuid(paymentId), for_update=True)
    await states.decide_late(session, settings, payment, "ACCEPTED")
    return JSON({"data": await states.wire_object(session, settings.public_url, payment)})


# ------------------------------------------------------------------ public: checkout API, callback, simulator


@router.get("/v1/payments/{id}/checkout", summary="Public checkout data of a payment",
            dependencies=[Depends(rate_limit("checkout_ip"))])
async def public_checkout(id: str, session: Session) -> JSON:
    payment = await service.get_public(session, parse_uuid(id))
    return JSON({"data": checkout_object(payment)})


class CallbackRepeated(Conflict):
    """A callback on a payment a callback already found closed. The original answered 500
    INTERNAL_ERROR; a repeat is the client's doing, so it is a 409 here (the SDKs treat every
    status >= 400 alike)."""

    code = "PAYMENT_CLOSED"


TERMINAL_WIRE = ("PAID", "EXPIRED", "FAILED")


@router.post("/v1/payments/{id}/callback", summary="Reconcile a payment from the indexed chain state",
             dependencies=[Depends(rate_limit("public_ip"))])
async def callback(id: str, session: Session, settings: Settings, resources: Resources) -> JSON:
    """Waits (at most ``callback_wait_s``, holding no connection) for the indexer to reach the
    chain's head, then re-derives this payment's state and expires it if due. A callback that
    finds the payment closed answers ``processed`` once; a repeated one is refused (409)."""
    payment_id = parse_uuid(id)
    async with resources.db.unit_of_work() as lookup:
        chain_id = (await service.get_public(lookup, payment_id)).chain_id
    await tasks.wait_indexed(resources.db, onchain.chain_of(settings, chain_id), settings.callback_wait_s)
    # recompute reads the row under its lock first: nothing loaded before it is stale
    await states.recompute(session, settings, [payment_id])
    await states.expire_due(session, settings, payment_ids=[payment_id])
    payment = await service.get_public(session, payment_id)
    if wire_status(payment) in TERMINAL_WIRE and not await _first_closed_callback(resources, payment.id):
        raise CallbackRepeated(f"failed to process callback: the payment is already {wire_status(payment)}")
    return JSON({"data": {"status": "processed"}})


async def _first_closed_callback(resources: NodeResources, payment_id: uuid.UUID) -> bool:
    try:
        return bool(await resources.redis.set(f"payments:callback-closed:{payment_id}", b"1", nx=True,
                                              ex=30 * 86_400))
    except RedisError:
        return True  # without Redis every callback is a first one


@router.post("/test/simulate/{providerPayId}", summary="Pay a test payment for real on the test chain",
             dependencies=[Depends(rate_limit("public_ip"))])
async def simulate(providerPayId: str, settings: Settings, resources: Resources) -> JSON:
    """The spec's simulated customer, on the test chain for real (:func:`tasks.simulate_customer`):
    0.01 USDT expires, 0.02 USDT underpays and fails, any other amount is paid. Only an open
    payment nothing was sent to is paid (a repeated call pays nothing more). The payment is read in
    a short transaction of its own: no connection is held through the chain transactions and the
    wait for the indexer."""
    async with resources.db.unit_of_work() as lookup:
        payment = await service.by_provider_pay_id(lookup, providerPayId[:40])
    if payment.mode != "test" or payment.chain_id in settings.live_chain_ids or (
            settings.is_production and payment.chain_id in (56, 1)):
        raise NotFound("payment not found")
    if payment.status == "initiated" and payment.received_seen == 0:
        chain = onchain.chain_of(settings, payment.chain_id)
        await asyncio.shield(tasks.simulate_customer(resources.db, chain, payment))
    return JSON({"data": {"status": "simulated", "providerPayId": providerPayId}})


# ------------------------------------------------------------------ hosted checkout page and QR


def _qr(content: str, kind: str) -> Response:
    qr = segno.make(content, error="m")
    buffer = io.BytesIO()
    if kind == "svg":
        qr.save(buffer, kind="svg", scale=6, border=2, xmldecl=False)
        return Response(buffer.getvalue(), media_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=3600"})
    qr.save(buffer, kind="png", scale=8, border=2)
    return Response(buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "public, max-age=3600"})


EXCHANGES = {"BINANCE": "Binance", "BYBIT": "Bybit", "KUCOIN": "KuCoin"}


def qr_content(p: Payment) -> str:
    """The EIP-681 URI for wallets; for a payment made from an exchange the plain deposit address:
    an exchange's withdrawal scanner takes a URI's first address (the token contract) as the
    destination."""
    return p.deposit_address if p.provider in EXCHANGES else eip681(p)


@router.get("/checkout/{id}/qr.svg", summary="QR of the payment (SVG)", include_in_schema=True)
async def qr_svg(id: str, session: Session) -> Response:
    return _qr(qr_content(await service.get_public(session, parse_uuid(id))), "svg")


@router.get("/checkout/{id}/qr.png", summary="QR of the payment (PNG)")
async def qr_png(id: str, session: Session) -> Response:
    return _qr(qr_content(await service.get_public(session, parse_uuid(id))), "png")


# what a wallet that does not know the chain is asked to add (wallet_addEthereumChain, EIP-3085)
KNOWN_CHAINS: dict[int, dict[str, Any]] = {
    56: {"chainId": "0x38", "chainName": "BNB Smart Chain Mainnet",
         "nativeCurrency": {"name": "BNB", "symbol": "BNB", "decimals": 18},
         "rpcUrls": ["https://bsc-dataseed.bnbchain.org", "https://bsc-dataseed1.binance.org"],
         "blockExplorerUrls": ["https://bscscan.com"]},
    97: {"chainId": "0x61", "chainName": "BNB Smart Chain Testnet",
         "nativeCurrency": {"name": "BNB", "symbol": "tBNB", "decimals": 18},
         "rpcUrls": ["https://data-seed-prebsc-1-s1.bnbchain.org:8545",
                     "https://data-seed-prebsc-2-s1.bnbchain.org:8545"],
         "blockExplorerUrls": ["https://testnet.bscscan.com"]},
}
NETWORKS = {56: "BEP-20 on BNB Smart Chain", 97: "BEP-20 on BNB Smart Chain Testnet"}


def add_chain_params(chain_id: int, settings: NodeSettings) -> dict[str, Any] | None:
    """BSC's standard parameters, or for another chain (anvil) ``public_rpc_url`` when one is set:
    a URL meant for customers, never the node's own RPC URL."""
    if chain_id in KNOWN_CHAINS:
        return KNOWN_CHAINS[chain_id]
    if not settings.public_rpc_url:
        return None
    return {"chainId": hex(chain_id), "chainName": f"Open Pay test chain {chain_id}",
            "nativeCurrency": {"name": "Ether", "symbol": "ETH", "decimals": 18},
            "rpcUrls": [settings.public_rpc_url]}


def redirect_url(url: str | None) -> str:
    """A stored success/cancel URL the page may go to: absolute http(s) only, else none."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    plain = url.isprintable() and not any(c.isspace() for c in url)
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc and plain else ""


def lkr_text(cents: int) -> str:
    """LKR cents as ``1,500.00`` (integer arithmetic)."""
    sign, cents = ("-", -cents) if cents < 0 else ("", cents)
    return f"{sign}{cents // 100:,}.{cents % 100:02d}"


@router.get("/checkout/{id}", response_class=HTMLResponse, summary="Hosted checkout page")
async def checkout_page(id: str, request: Request, session: Session, settings: Settings) -> HTMLResponse:
    """The customer's page. Success and cancel redirects are the payment's stored URLs only: the
    ``successUrl``/``cancelUrl`` a checkout session's URL carries (the original's form) are the
    same stored values, and anything else in the query is ignored."""
    try:
        payment = await service.get_public(session, parse_uuid(id))
    except NodeError as exc:
        if exc.status not in (400, 404):
            raise
        return TEMPLATES.TemplateResponse(request, "checkout_missing.html", {}, status_code=404)
    merchant = await merchants.get(session, payment.merchant_id)
    dep = onchain.deployment(onchain.chain_of(settings, payment.chain_id))
    intent = _intent_json(payment)
    intent["gateway"] = dep.gateway
    gateway_art = onchain.artifacts()["OpenPayGateway"]
    token_art = onchain.artifacts()["MockUSDT"]
    intent["payData"] = "0x" + gateway_art.encode_call("pay", service.intent_of(payment).as_tuple(),
                                                       bytes(payment.signature)).hex()
    intent["approveData"] = "0x" + token_art.encode_call("approve", dep.gateway, int(payment.amount_units)).hex()
    context = {
        "p": payment, "data": checkout_object(payment), "merchant_name": merchant.business_name,
        "intent": intent, "amount_usdt": format_units(payment.amount_units),
        "amount_lkr": lkr_text(int(payment.fiat_cents)),
        "network": NETWORKS.get(payment.chain_id, f"BEP-20 on test chain {payment.chain_id}"),
        "exchange": EXCHANGES.get(payment.provider),
        "config": {"successUrl": redirect_url(payment.success_url), "cancelUrl": redirect_url(payment.cancel_url),
                   "addChain": add_chain_params(payment.chain_id, settings)},
    }
    return TEMPLATES.TemplateResponse(request, "checkout.html", context)
