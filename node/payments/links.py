"""Payment links (the original's fields): a public page ``/pay/{slug}`` that creates a payment
and sends the customer to checkout. Amount and quantity rules are checked here, on the server;
usage counts when a payment of the link is paid; the scheduler applies expiry.

A single-use link holds at most one open payment at a time: ``claim`` locks the link row and
refuses a second payment while one is open (409 LINK_IN_USE); the payment's expiry releases the
link. Two visitors can therefore never both pay it, whatever the timing of their requests."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from node.db import paging
from node.errors import Conflict, NodeError, NotFound, ValidationFailed
from node.money import format_decimal
from node.payments.models import Payment, PaymentLink
from node.payments.schemas import CURRENCIES, PaymentRequest, check_amount_for, parse_amount, parse_time, rfc3339

SLUG = re.compile(r"^[a-z0-9-]{2,100}$")


class LinkGone(NodeError):
    status = 410


class LinkInUse(Conflict):
    code = "LINK_IN_USE"


# the states in which a payment can still become paid; the same set as the payments' partial index
# ix_payments_open_expiry, so finding a link's open payment reads only open payments
OPEN_STATES = ("initiated", "pending", "underpaid")


def _dec(body: dict[str, Any], key: str) -> Decimal | None:
    raw = body.get(key)
    if raw in (None, ""):
        return None
    return parse_amount(raw)


def validate(body: dict[str, Any], *, partial: bool = False, existing: PaymentLink | None = None) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed("body must be a JSON object")
    out: dict[str, Any] = {}
    def has(k: str) -> bool:
        return k in body
    if not partial or has("name"):
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\x00" in name:
            raise ValidationFailed("name is required (1-200 characters)")
        out["name"] = name.strip()
    if not partial or has("slug"):
        slug = body.get("slug")
        if not isinstance(slug, str) or not SLUG.match(slug):
            raise ValidationFailed("slug must be 2-100 characters of a-z, 0-9 and -")
        out["slug"] = slug
    if not partial or has("currency"):
        currency = body.get("currency") or "LKR"
        if not isinstance(currency, str) or currency.upper() not in CURRENCIES:
            raise ValidationFailed(f"unsupported currency {str(currency)[:20]}")
        out["currency"] = currency.upper()
    for key, col in (("allowCustomAmount", "allow_custom_amount"), ("allowQuantity", "allow_quantity"),
                     ("reusable", "reusable"), ("showQr", "show_qr")):
        if has(key):
            if not isinstance(body[key], bool):
                raise ValidationFailed(f"{key} must be true or false")
            out[col] = body[key]
    for key, col in (("amount", "amount"), ("minAmount", "min_amount"), ("maxAmount", "max_amount")):
        if has(key):
            out[col] = _dec(body, key)
    if has("maxQuantity"):
        q = body["maxQuantity"]
        if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 10_000:
            raise ValidationFailed("maxQuantity must be an integer 1-10000")
        out["max_quantity"] = q
    for key, col in (("successUrl", "success_url"), ("cancelUrl", "cancel_url"), ("webhookUrl", "webhook_url")):
        if has(key) and body[key] not in (None, ""):
            v = body[key]
            if (not isinstance(v, str) or not v.startswith(("https://", "http://")) or len(v) > 2000
                    or "\x00" in v):
                raise ValidationFailed(f"{key} must be an http(s) URL")
            out[col] = v
    for key, col, limit in (("description", "description", 2000), ("merchantTradeNo", "merchant_trade_no", 200)):
        if has(key) and body[key] not in (None, ""):
            v = body[key]
            if not isinstance(v, str) or len(v) > limit or "\x00" in v:
                raise ValidationFailed(f"{key} must be a string up to {limit} characters")
            out[col] = v
    if has("orderExpireMinutes") and body["orderExpireMinutes"] is not None:
        m = body["orderExpireMinutes"]
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 7 * 24 * 60:
            raise ValidationFailed("orderExpireMinutes must be 1-10080")
        out["order_expire_minutes"] = m
    if has("expireAt") and body["expireAt"] not in (None, ""):
        out["expire_at"] = parse_time(body["expireAt"], "expireAt", prefix="")
    if has("status"):
        if body["status"] not in ("ACTIVE", "INACTIVE"):
            raise ValidationFailed("status must be ACTIVE or INACTIVE")
        out["status"] = body["status"]
    merged = {c.key: getattr(existing, c.key) for c in PaymentLink.__table__.columns} if existing else {}
    merged.update(out)
    custom = bool(merged.get("allow_custom_amount"))
    if not custom and merged.get("amount") is None:
        raise ValidationFailed("amount is required unless allowCustomAmount")
    lo, hi = merged.get("min_amount"), merged.get("max_amount")
    if lo is not None and hi is not None and lo > hi:
        raise ValidationFailed("minAmount must not exceed maxAmount")
    for key in ("amount", "min_amount", "max_amount"):  # what this request sets (or re-prices)
        if merged.get(key) is not None and (key in out or "currency" in out):
            check_amount_for(merged[key], merged.get("currency") or "LKR")
    return out


async def create(session: AsyncSession, merchant_id: uuid.UUID, branch_id: uuid.UUID | None, mode: str,
                 body: dict[str, Any]) -> PaymentLink:
    values = validate(body)
    inserted = (await session.execute(insert(PaymentLink).values(
        id=uuid.uuid4(), merchant_id=merchant_id, branch_id=branch_id, mode=mode, **values)
        .on_conflict_do_nothing(index_elements=["slug"]).returning(PaymentLink.id))).scalar_one_or_none()
    if inserted is None:
        raise Conflict("slug is taken", code="SLUG_TAKEN")
    return await get_owned(session, merchant_id, inserted, branch_id=None)


async def update_link(session: AsyncSession, link: PaymentLink, body: dict[str, Any]) -> PaymentLink:
    values = validate(body, partial=True, existing=link)
    if "slug" in values and values["slug"] != link.slug:
        taken = (await session.execute(select(PaymentLink.id).where(PaymentLink.slug == values["slug"]))).first()
        if taken:
            raise Conflict("slug is taken", code="SLUG_TAKEN")
    for key, value in values.items():
        setattr(link, key, value)
    link.updated_at = datetime.now(UTC)
    try:
        await session.flush()
    except IntegrityError as exc:
        # a rename racing another request to the same slug: the check above saw it free
        if "uq_links_slug" in str(exc.orig):
            raise Conflict("slug is taken", code="SLUG_TAKEN") from exc
        raise
    return link


async def get_owned(session: AsyncSession, merchant_id: uuid.UUID, link_id: uuid.UUID, *,
                    branch_id: uuid.UUID | None) -> PaymentLink:
    query = select(PaymentLink).where(PaymentLink.id == link_id, PaymentLink.merchant_id == merchant_id)
    if branch_id is not None:
        query = query.where(PaymentLink.branch_id == branch_id)
    link = (await session.execute(query)).scalar_one_or_none()
    if link is None:
        raise NotFound("payment link not found")
    return link


async def list_links(session: AsyncSession, merchant_id: uuid.UUID, branch_id: uuid.UUID | None, page: int,
                     per_page: int) -> tuple[list[PaymentLink], int]:
    where = [PaymentLink.merchant_id == merchant_id]
    if branch_id is not None:
        where.append(PaymentLink.branch_id == branch_id)
    return await paging.page(session, select(PaymentLink).where(*where), PaymentLink.created_at.desc(),
                             offset=(page - 1) * per_page, limit=per_page)


async def slug_available(session: AsyncSession, slug: str) -> bool:
    if not SLUG.match(slug):
        return False
    return (await session.execute(select(PaymentLink.id).where(PaymentLink.slug == slug))).first() is None


async def public(session: AsyncSession, slug: str, *, check_open: bool = True) -> PaymentLink:
    """The link behind ``/pay/{slug}``: 404 unknown or inactive, 410 EXPIRED or CONSUMED, 409
    LINK_IN_USE while a single-use link has an open payment (unless ``check_open`` is off)."""
    if not SLUG.match(slug):  # no such link, and nothing to send to the database (a NUL, say)
        raise NotFound("payment link not found")
    link = (await session.execute(select(PaymentLink).where(PaymentLink.slug == slug))).scalar_one_or_none()
    if link is None:
        raise NotFound("payment link not found")
    await _check_usable(session, link, check_open=check_open)
    return link


async def qr_page(session: AsyncSession, slug: str) -> PaymentLink:
    """The link behind its printable QR (``/pay/{slug}/poster``, ``qr.png``): as ``public`` finds
    it, open payments aside (a counter QR is printed once and used later), and only while the
    merchant has the link's QR page on (``showQr``)."""
    link = await public(session, slug, check_open=False)
    if not link.show_qr:
        raise NotFound("payment link has no QR page")
    return link


async def claim(session: AsyncSession, slug: str) -> PaymentLink:
    """The link, locked to the end of the caller's transaction, for creating a payment from it.

    Concurrent claims of one link queue on the row lock; each sees what the ones before it
    committed, so a single-use link never gets a second payment while one is open."""
    if not SLUG.match(slug):
        raise NotFound("payment link not found")
    link = (await session.execute(select(PaymentLink).where(PaymentLink.slug == slug)
                                  .with_for_update())).scalar_one_or_none()
    if link is None:
        raise NotFound("payment link not found")
    await _check_usable(session, link, check_open=True)
    return link


async def _check_usable(session: AsyncSession, link: PaymentLink, *, check_open: bool) -> None:
    # expiry first: the scheduler deactivates expired links, and they still answer 410 EXPIRED
    if link.expire_at is not None and link.expire_at <= datetime.now(UTC):
        raise LinkGone("payment link has expired", code="EXPIRED")
    if link.status != "ACTIVE":
        raise NotFound("payment link not found")
    if link.reusable:
        return
    if link.usage_count > 0:
        raise LinkGone("payment link has already been used", code="CONSUMED")
    if check_open:
        expire_at = await open_payment_expiry(session, link)
        if expire_at is not None:
            raise LinkInUse("this single-use payment link has a payment in progress; if it is not paid, the "
                            f"link is free again after {rfc3339(expire_at)}")


async def open_payment_expiry(session: AsyncSession, link: PaymentLink) -> datetime | None:
    """When the link's open payment expires (None: no open payment). A payment past its expiry
    still counts until the expiry job closes it: money could still make it paid until then."""
    return (await session.execute(
        select(Payment.expire_at).where(Payment.status.in_(OPEN_STATES), Payment.link_id == link.id,
                                        Payment.merchant_id == link.merchant_id)
        .order_by(Payment.expire_at.desc()).limit(1))).scalar_one_or_none()


def payment_request(link: PaymentLink, amount_raw: Any, quantity_raw: Any, email: str | None) -> PaymentRequest:
    """The payment a customer asks for through a link, by the link's rules."""
    if email and "\x00" in email:
        raise ValidationFailed("e-mail must not contain NUL")
    if link.allow_custom_amount:
        amount = parse_amount(amount_raw)
        check_amount_for(amount, link.currency)
        if link.min_amount is not None and amount < link.min_amount:
            raise ValidationFailed(f"amount must be at least {format_decimal(link.min_amount)}")
        if link.max_amount is not None and amount > link.max_amount:
            raise ValidationFailed(f"amount must be at most {format_decimal(link.max_amount)}")
    else:
        assert link.amount is not None
        amount = link.amount
    quantity = 1
    if quantity_raw not in (None, ""):
        try:
            quantity = int(str(quantity_raw))
        except ValueError as exc:
            raise ValidationFailed("quantity must be a whole number") from exc
        if quantity < 1 or (not link.allow_quantity and quantity != 1) or quantity > link.max_quantity:
            raise ValidationFailed(f"quantity must be between 1 and {link.max_quantity if link.allow_quantity else 1}")
    request = PaymentRequest(amount=amount * quantity, currency=link.currency, provider="TEST")
    request.merchant_trade_no = link.merchant_trade_no or f"PL-{link.slug}"
    request.success_url, request.cancel_url, request.webhook_url = link.success_url, link.cancel_url, link.webhook_url
    request.branch_id = link.branch_id
    request.expires_in_minutes = link.order_expire_minutes
    request.description = link.description
    request.goods = [{"name": link.name, "description": f"Qty: {quantity}"}]
    email = email.strip().lower() if email else None  # lower case can lengthen it ("İ"): measured after
    if email and "@" in email and len(email) <= 320:
        request.customer_email = email
    return request


async def count_use(session: AsyncSession, link_id: uuid.UUID) -> None:
    """One more paid payment of the link. A single-use link counts to 1 at most: a second payment
    can still end up paid (money accepted after its expiry), but the link was used once."""
    await session.execute(update(PaymentLink).where(
        PaymentLink.id == link_id, or_(PaymentLink.reusable, PaymentLink.usage_count < 1))
        .values(usage_count=PaymentLink.usage_count + 1))


async def expire_due(session: AsyncSession) -> int:
    result = await session.execute(update(PaymentLink).where(
        PaymentLink.status == "ACTIVE", PaymentLink.expire_at.is_not(None), PaymentLink.expire_at <= func.now())
        .values(status="INACTIVE", updated_at=func.now()).returning(PaymentLink.id))
    return len(result.all())


def link_object(link: PaymentLink, portal_url: str) -> dict[str, Any]:
    def dec(v: Decimal | None) -> str | None:
        return format_decimal(v) if v is not None else None
    return {
        "id": str(link.id), "merchantId": str(link.merchant_id), "name": link.name, "slug": link.slug,
        "description": link.description or "", "currency": link.currency, "amount": dec(link.amount),
        "allowCustomAmount": link.allow_custom_amount, "minAmount": dec(link.min_amount),
        "maxAmount": dec(link.max_amount), "allowQuantity": link.allow_quantity, "maxQuantity": link.max_quantity,
        "reusable": link.reusable, "showQr": link.show_qr, "successUrl": link.success_url or "",
        "cancelUrl": link.cancel_url or "", "merchantTradeNo": link.merchant_trade_no or "",
        "orderExpireMinutes": link.order_expire_minutes, "expireAt": rfc3339(link.expire_at),
        "status": link.status, "usageCount": link.usage_count, "mode": link.mode,
        "url": f"{portal_url.rstrip('/')}/pay/{link.slug}", "createdAt": rfc3339(link.created_at),
        "updatedAt": rfc3339(link.updated_at),
    }
