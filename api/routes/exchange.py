"""Exchange rates: the original's public ``GET /v1/exchange-rates/active`` plus history, and
admin overrides (audited) and refreshes."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from api.deps import RequestMeta, Resources, Session, Settings, rate_limit, require_admin_permission
from api.payments_common import json_body
from api.responses import JSON
from node.auth.principal import AdminPrincipal
from node.errors import ServiceUnavailable, ValidationFailed
from node.exchange import rates
from node.exchange.coingecko import CoinGecko, RateSourceError
from node.money import InvalidAmount, format_decimal, parse_decimal
from node.payments.schemas import parse_time, rfc3339

router = APIRouter(tags=["exchange"])
Manager = Annotated[AdminPrincipal, Depends(require_admin_permission("treasury:manage"))]


def _pair(request: Request) -> tuple[str, str]:
    base = (request.query_params.get("base") or "USDT").upper()
    quote = (request.query_params.get("quote") or "LKR").upper()
    if base not in rates.CURRENCIES or quote not in rates.CURRENCIES:
        raise ValidationFailed(f"unsupported pair {base[:10]}/{quote[:10]}")
    return base, quote


def active_object(rate: rates.ActiveRate, settings: Any) -> dict[str, Any]:
    return {"base": rate.base, "quote": rate.quote, "rate": format_decimal(rate.rate),
            "effectiveRate": format_decimal(rate.rate), "source": rate.source, "isActive": True,
            "fetchedAt": rfc3339(rate.fetched_at), "stale": rate.age_s() > settings.rate_max_age_s,
            **({"reason": rate.reason} if rate.reason else {}),
            **({"expiresAt": rfc3339(rate.expires_at)} if rate.expires_at else {})}


@router.get("/v1/exchange-rates/active", summary="The active rate of a pair (public)",
            dependencies=[Depends(rate_limit("public_ip"))])
async def active(request: Request, session: Session, settings: Settings) -> JSON:
    base, quote = _pair(request)
    return JSON({"data": active_object(await rates.active(session, settings, base, quote), settings)})


@router.get("/v1/exchange-rates/history", summary="Observed rates of a pair, newest first (public)",
            dependencies=[Depends(rate_limit("public_ip"))])
async def history(request: Request, session: Session) -> JSON:
    base, quote = _pair(request)
    since_raw = request.query_params.get("since")
    # an offset is required: a time without one is refused, not read as the server's local time
    since = parse_time(since_raw, "since", prefix="") if since_raw else None
    try:
        limit = min(1000, max(1, int(request.query_params.get("limit", "100"))))
    except ValueError as exc:
        raise ValidationFailed("limit must be a whole number") from exc
    rows = await rates.history(session, base, quote, since=since, limit=limit)
    return JSON({"data": [{"base": r.base, "quote": r.quote, "rate": format_decimal(r.rate), "source": r.source,
                           "fetchedAt": rfc3339(r.fetched_at)} for r in rows]})


@router.post("/v1/admin/exchange-rates/override", status_code=201, summary="Set a manual rate (with reason)")
async def override(request: Request, session: Session, settings: Settings, admin: Manager, meta: RequestMeta) -> JSON:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ValidationFailed("body must be a JSON object")
    raw_rate = body.get("rate")
    # a JSON number with a fraction arrives as a float and may already have lost digits
    if isinstance(raw_rate, bool) or not isinstance(raw_rate, str | int):
        raise ValidationFailed("rate must be a decimal string, e.g. \"318.25\"")
    try:
        rate = parse_decimal(str(raw_rate))
    except InvalidAmount as exc:
        raise ValidationFailed("rate must be a decimal number") from exc
    minutes = body.get("expiresInMinutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0):
        raise ValidationFailed("expiresInMinutes must be a positive integer")
    reason = body.get("reason")
    if not isinstance(reason, str):
        raise ValidationFailed("reason is required")
    base, quote = body.get("base") or "USDT", body.get("quote") or "LKR"
    if not isinstance(base, str) or not isinstance(quote, str):
        raise ValidationFailed("base and quote must be currency codes")
    await rates.set_override(session, settings, base=base, quote=quote, rate=rate, reason=reason,
                             admin_id=admin.admin_id, expires_in_minutes=minutes, meta=meta)
    active_rate = await rates.active(session, settings, base, quote)
    return JSON({"data": active_object(active_rate, settings)}, status_code=201)


@router.delete("/v1/admin/exchange-rates/override", summary="Clear the manual rate of a pair")
async def clear(request: Request, session: Session, admin: Manager, meta: RequestMeta) -> JSON:
    base, quote = _pair(request)
    cleared = await rates.clear_override(session, base=base, quote=quote, admin_id=admin.admin_id, meta=meta)
    return JSON({"data": {"cleared": cleared}})


@router.post("/v1/admin/exchange-rates/refresh", summary="Fetch rates from CoinGecko now")
async def refresh(session: Session, settings: Settings, resources: Resources, admin: Manager) -> JSON:
    source = CoinGecko(resources.http, settings.coingecko_url, timeout=settings.rates_timeout_s,
                       api_key=settings.coingecko_api_key.get_secret_value() if settings.coingecko_api_key else None)
    try:
        prices = await rates.refresh(session, source)
    except RateSourceError as exc:
        raise ServiceUnavailable(f"rate source failed: {exc}", code="RATE_SOURCE_UNAVAILABLE") from exc
    return JSON({"data": {k: format_decimal(Decimal(v)) for k, v in prices.items()}})
