"""Payment links: merchant CRUD (``/v1/payment-links``), the public lookup and page ``/pay/{slug}``
that creates a payment and redirects to checkout, and the printable counter QR."""

from __future__ import annotations

import io
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import Session, Settings, rate_limit, require_permission
from api.payments_common import json_body
from api.responses import JSON
from api.routes.payments import MAX_PAGE, TEMPLATES
from node.auth.principal import MerchantPrincipal
from node.errors import NodeError, ValidationFailed
from node.merchants import service as merchants
from node.payments import links, service
from node.payments.schemas import parse_uuid

router = APIRouter(tags=["payment links"])
Reader = Annotated[MerchantPrincipal, Depends(require_permission("payment_links:read"))]
Writer = Annotated[MerchantPrincipal, Depends(require_permission("payment_links:write"))]


@router.post("/v1/payment-links", status_code=201, summary="Create a payment link")
async def create_link(request: Request, session: Session, settings: Settings, principal: Writer) -> JSON:
    body = await json_body(request)
    link = await links.create(session, principal.merchant_id, principal.branch_id, principal.mode, body)
    return JSON({"data": links.link_object(link, settings.public_url)}, status_code=201)


@router.get("/v1/payment-links", summary="List payment links")
async def list_links(request: Request, session: Session, settings: Settings, principal: Reader) -> JSON:
    try:
        page = max(1, int(request.query_params.get("page", "1")))
        per_page = min(100, max(1, int(request.query_params.get("perPage", "20"))))
    except ValueError as exc:
        raise ValidationFailed("page and perPage must be whole numbers") from exc
    if page > MAX_PAGE:
        raise ValidationFailed(f"page must be at most {MAX_PAGE}")
    rows, total = await links.list_links(session, principal.merchant_id, principal.branch_id, page, per_page)
    return JSON({"data": [links.link_object(r, settings.public_url) for r in rows],
                 "meta": {"total": total, "page": page, "perPage": per_page}})


@router.get("/v1/payment-links/check-slug", summary="Is a slug free?")
async def check_slug(slug: str, session: Session, principal: Reader) -> JSON:
    return JSON({"data": {"slug": slug, "available": await links.slug_available(session, slug)}})


@router.get("/v1/payment-links/{linkId}", summary="Get a payment link")
async def get_link(linkId: str, session: Session, settings: Settings, principal: Reader) -> JSON:
    link = await links.get_owned(session, principal.merchant_id, parse_uuid(linkId, "invalid link ID format"),
                                 branch_id=principal.branch_id)
    return JSON({"data": links.link_object(link, settings.public_url)})


@router.patch("/v1/payment-links/{linkId}", summary="Update a payment link")
async def update_link(linkId: str, request: Request, session: Session, settings: Settings, principal: Writer) -> JSON:
    link = await links.get_owned(session, principal.merchant_id, parse_uuid(linkId, "invalid link ID format"),
                                 branch_id=principal.branch_id)
    link = await links.update_link(session, link, await json_body(request))
    return JSON({"data": links.link_object(link, settings.public_url)})


@router.delete("/v1/payment-links/{linkId}", summary="Deactivate a payment link")
async def delete_link(linkId: str, session: Session, settings: Settings, principal: Writer) -> JSON:
    link = await links.get_owned(session, principal.merchant_id, parse_uuid(linkId, "invalid link ID format"),
                                 branch_id=principal.branch_id)
    link = await links.update_link(session, link, {"status": "INACTIVE"})
    return JSON({"data": links.link_object(link, settings.public_url)})


@router.get("/v1/public/payment-links/by-slug/{slug}", summary="Public lookup of a link",
            dependencies=[Depends(rate_limit("public_ip"))])
async def public_link(slug: str, session: Session, settings: Settings) -> JSON:
    link = await links.public(session, slug)
    merchant = await merchants.get(session, link.merchant_id)
    data = links.link_object(link, settings.public_url)
    for private in ("merchantTradeNo", "successUrl", "cancelUrl", "mode"):
        data.pop(private, None)
    data["merchantName"] = merchant.business_name
    return JSON({"data": data})


def _principal(link: Any, kyc: str) -> MerchantPrincipal:
    return MerchantPrincipal(merchant_id=link.merchant_id, user_id=None, role=None, branch_id=None,
                             mode=link.mode, api_key_id=None, permissions=frozenset({"payments:write"}),
                             kyc_status=kyc)


@router.get("/pay/{slug}", response_class=HTMLResponse, summary="Payment link page")
async def link_page(slug: str, request: Request, session: Session, settings: Settings) -> Response:
    try:
        link = await links.public(session, slug)
    except NodeError as exc:
        return TEMPLATES.TemplateResponse(request, "link_gone.html", {"message": exc.message},
                                          status_code=exc.status)
    merchant = await merchants.get(session, link.merchant_id)
    return TEMPLATES.TemplateResponse(request, "link.html", {"link": link, "merchant_name": merchant.business_name,
                                                             "error": None})


@router.post("/pay/{slug}", summary="Start a payment from a link", dependencies=[Depends(rate_limit("public_ip"))])
async def link_pay(slug: str, request: Request, session: Session, settings: Settings) -> Response:
    try:
        # locked until the request's transaction commits: a single-use link gets one open payment
        link = await links.claim(session, slug)
    except NodeError as exc:
        return TEMPLATES.TemplateResponse(request, "link_gone.html", {"message": exc.message},
                                          status_code=exc.status)
    form = await request.form()
    merchant = await merchants.get(session, link.merchant_id)
    merchant_name = merchant.business_name  # read now: a rolled-back savepoint expires the row
    try:
        body = links.payment_request(link, form.get("amount"), form.get("quantity"), str(form.get("email") or ""))
        # a refused payment (risk, instant-access cap, ...) leaves nothing behind, though the page
        # is an answer and the unit of work commits: what creation wrote (a live payment's
        # instant-access reservation) rolls back with the savepoint
        async with session.begin_nested():
            payment = await service.create(session, settings, _principal(link, merchant.kyc_status), body,
                                           source="LINK", link_id=link.id)
    except NodeError as exc:
        if exc.status >= 500:
            raise
        return TEMPLATES.TemplateResponse(request, "link.html", {"link": link, "merchant_name": merchant_name,
                                                                 "error": exc.message}, status_code=exc.status)
    return RedirectResponse(f"/checkout/{payment.id}", status_code=303)


@router.get("/pay/{slug}/qr.png", summary="QR of the link (PNG)")
async def link_qr(slug: str, session: Session, settings: Settings) -> Response:
    await links.qr_page(session, slug)
    buffer = io.BytesIO()
    segno.make(f"{settings.public_url.rstrip('/')}/pay/{slug}", error="m").save(buffer, kind="png", scale=10, border=2)
    return Response(buffer.getvalue(), media_type="image/png")


@router.get("/pay/{slug}/poster", response_class=HTMLResponse, summary="Printable counter QR (POS)")
async def link_poster(slug: str, request: Request, session: Session, settings: Settings) -> Response:
    try:
        link = await links.qr_page(session, slug)
    except NodeError as exc:
        return TEMPLATES.TemplateResponse(request, "link_gone.html", {"message": exc.message},
                                          status_code=exc.status)
    merchant = await merchants.get(session, link.merchant_id)
    url = f"{settings.public_url.rstrip('/')}/pay/{slug}"
    svg = segno.make(url, error="m").svg_inline(scale=10, border=2)
    return TEMPLATES.TemplateResponse(request, "poster.html", {"link": link, "merchant_name": merchant.business_name,
                                                               "url": url, "svg": svg})
