"""The wire shapes of payments (sdk-wire-protocol.md section 2) and parsing of create requests.

Requests are parsed by hand rather than by pydantic: the protocol fixes error codes and
messages per field (INVALID_AMOUNT, "invalid payment data: ...") and matches keys
case-insensitively (``successURL`` and ``successUrl``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from node.errors import NodeError, ValidationFailed
from node.money import InvalidAmount, format_decimal, format_units, parse_decimal
from node.payments.models import Payment

CURRENCIES = ("USDT", "USDC", "BTC", "ETH", "BNB", "LKR")
PROVIDERS = ("BYBIT", "BINANCE", "KUCOIN", "TEST")

WIRE_STATUS = {
    "initiated": "INITIATED", "pending": "USER_REVIEW", "paid": "PAID", "overpaid": "PAID",
    "underpaid": "USER_REVIEW", "expired": "EXPIRED", "late": "EXPIRED", "failed": "FAILED",
    "refunded": "PAID", "partially_refunded": "PAID",
}
# list filter `status` (wire) -> internal states
STATES_OF_WIRE: dict[str, tuple[str, ...]] = {}
for _state, _wire in WIRE_STATUS.items():
    STATES_OF_WIRE.setdefault(_wire, ())
    STATES_OF_WIRE[_wire] += (_state,)


class InvalidJSON(NodeError):
    code = "INVALID_JSON"
    status = 400


class InvalidPaymentAmount(NodeError):
    code = "INVALID_AMOUNT"
    status = 400


class InvalidId(NodeError):
    code = "INVALID_ID"
    status = 400


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    # isoformat() of the naive UTC time is strftime's "%Y-%m-%dT%H:%M:%S" at a third of its cost
    return value.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def parse_time(text: Any, name: str, prefix: str = "invalid payment data: ") -> datetime:
    """An RFC3339 time with its offset, in UTC. A time without an offset is refused (never read as
    the server's local time); so is one whose UTC value is outside years 1-9999
    (``0001-01-01T00:00:00+01:00``), which Python cannot represent."""
    if not isinstance(text, str) or "\x00" in text:
        raise ValidationFailed(f"{prefix}{name} must be an RFC3339 time")
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(f"{prefix}{name} must be an RFC3339 time") from exc
    if value.tzinfo is None:
        raise ValidationFailed(f"{prefix}{name} needs a time zone")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValidationFailed(f"{prefix}{name} is out of range") from exc


def parse_uuid(text: str, message: str = "invalid payment ID format") -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidId(message) from exc


# ------------------------------------------------------------------ create request


@dataclass
class PaymentRequest:
    amount: Decimal
    currency: str = "USDT"
    provider: str = "TEST"
    merchant_trade_no: str | None = None
    webhook_url: str | None = None
    success_url: str | None = None
    cancel_url: str | None = None
    customer_email: str | None = None
    branch_id: uuid.UUID | None = None
    expire_at: datetime | None = None
    expires_in_minutes: int | None = None
    customer_billing: dict[str, Any] | None = None
    goods: list[dict[str, Any]] | None = None
    description: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _lower_keys(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidJSON("malformed request body")
    return {str(k).lower(): v for k, v in body.items()}


def _text(body: dict[str, Any], key: str, limit: int = 500) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationFailed(f"invalid payment data: {key} must be a string")
    if "\x00" in value:
        raise ValidationFailed(f"invalid payment data: {key} contains NUL")
    if len(value) > limit:
        raise ValidationFailed(f"invalid payment data: {key} is too long")
    return value.strip()


def _url(body: dict[str, Any], key: str) -> str | None:
    value = _text(body, key, 2000)
    if value is not None and not value.lower().startswith(("https://", "http://")):
        raise ValidationFailed(f"invalid payment data: {key} must be an http(s) URL")
    return value


def parse_amount(raw: Any, *, required_message: str | None = None) -> Decimal:
    if raw is None or raw == "":
        if required_message:
            raise ValidationFailed(required_message)
        raise InvalidPaymentAmount("amount must be a valid number")
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InvalidPaymentAmount("amount must be a valid number")
    try:
        value = parse_decimal(str(raw) if not isinstance(raw, float) else repr(raw))
    except InvalidAmount as exc:
        raise InvalidPaymentAmount("amount must be a valid number") from exc
    if value <= 0:
        raise ValidationFailed("invalid payment data: amount must be positive")
    if value >= Decimal(10) ** 15 or value.as_tuple().exponent < -18:  # type: ignore[operator]
        raise ValidationFailed("invalid payment data: amount is out of range")
    return value


CENT = Decimal("0.01")


def check_amount_for(amount: Decimal, currency: str) -> None:
    """LKR is kept in cents: an LKR amount has at most 2 decimals (``"0.001"`` would be a payment
    of 0 cents, ``"10.005"`` one whose LKR figures differ from what was asked)."""
    if currency == "LKR" and amount != amount.quantize(CENT):
        raise InvalidPaymentAmount("LKR amounts have at most 2 decimals (cents)")


def _no_nul(value: Any, name: str) -> None:
    # PostgreSQL stores no NUL character in text or JSONB: refused here, not by a failing INSERT
    if isinstance(value, str) and "\x00" in value:
        raise ValidationFailed(f"invalid payment data: {name} contains NUL")


def parse_payment_request(raw: Any, *, default_currency: str = "USDT",
                          amount_required_message: str | None = None) -> PaymentRequest:
    body = _lower_keys(raw)
    amount = parse_amount(body.get("amount"), required_message=amount_required_message)
    currency = body.get("currency") or default_currency
    if not isinstance(currency, str) or currency.upper() not in CURRENCIES:
        raise ValidationFailed(f"invalid payment data: unsupported currency {str(currency)[:20]}")
    provider = body.get("provider") or "TEST"
    if not isinstance(provider, str) or provider.upper() not in PROVIDERS:
        raise ValidationFailed(f"invalid payment data: unsupported provider {str(provider)[:20]}")
    request = PaymentRequest(amount=amount, currency=currency.upper(), provider=provider.upper())
    check_amount_for(amount, request.currency)
    request.merchant_trade_no = _text(body, "merchanttradeno", 200)
    request.webhook_url = _url(body, "webhookurl")
    request.success_url = _url(body, "successurl")
    request.cancel_url = _url(body, "cancelurl")
    email = _text(body, "customeremail", 320)
    if email is not None:
        email = email.lower()  # (which can lengthen it: "İ" is two characters in lower case)
        if "@" not in email or len(email) < 3:
            raise ValidationFailed("invalid payment data: customerEmail is not an e-mail address")
        if len(email) > 320:
            raise ValidationFailed("invalid payment data: customeremail is too long")
    request.customer_email = email
    branch = _text(body, "branchid", 64)
    if branch is not None:
        try:
            request.branch_id = uuid.UUID(branch)
        except ValueError as exc:
            raise ValidationFailed("invalid payment data: branchId must be a UUID") from exc
    expire = body.get("orderexpiretime")
    if expire not in (None, ""):
        request.expire_at = parse_time(expire, "orderExpireTime")
    minutes = body.get("expiresinminutes")
    if minutes not in (None, ""):
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
            raise ValidationFailed("invalid payment data: expiresInMinutes must be a positive integer")
        request.expires_in_minutes = minutes
    billing = body.get("customerbilling")
    if billing is not None:
        if not isinstance(billing, dict):
            raise ValidationFailed("invalid payment data: customerBilling must be an object")
        request.customer_billing = {k: str(v)[:300] for k, v in billing.items()
                                    if k in ("firstName", "lastName", "email", "phone", "address")
                                    and isinstance(v, str | int)}
        for k in request.customer_billing:
            _no_nul(str(billing[k]), f"customerBilling.{k}")  # all of it: the e-mail below is taken from past 300
        if request.customer_email is None and isinstance(billing.get("email"), str) and "@" in billing["email"]:
            request.customer_email = billing["email"].strip().lower()[:320]
    goods = body.get("goods")
    if goods is None and isinstance(body.get("lineitems"), list):
        goods = [{"name": item.get("name"), "description": item.get("description")}
                 for item in body["lineitems"] if isinstance(item, dict)]
    if goods is not None:
        if not isinstance(goods, list) or len(goods) > 100 or not all(isinstance(g, dict) for g in goods):
            raise ValidationFailed("invalid payment data: goods must be a list of objects")
        request.goods = [{k: str(v)[:500] for k, v in g.items() if k in ("name", "description", "mccCode")
                          and isinstance(v, str | int)} for g in goods]
        for good in request.goods:
            for k, v in good.items():
                _no_nul(v, f"goods.{k}")
    request.description = _text(body, "description", 2000)
    return request


# ------------------------------------------------------------------ rendering


def fee_breakdown(p: Payment) -> dict[str, str]:
    gross = p.amount_units
    out = {
        "grossAmountUSDT": format_units(gross),
        "exchangeFeePercentage": format_decimal(p.exchange_fee_pct),
        "exchangeFeeAmountUSDT": format_units(p.exchange_fee_units),
        "ceypayFeePercentage": format_decimal(p.platform_fee_pct),
        "ceypayFeeAmountUSDT": format_units(p.platform_fee_units),
        "totalFeesUSDT": format_units(p.fee_units),
        "netAmountUSDT": format_units(gross - p.fee_units),
    }
    if p.currency == "LKR":
        ex, pl = lkr_fees(p.fiat_cents, p.exchange_fee_pct, p.platform_fee_pct)
        out.update({
            "grossAmountLKR": _cents(p.fiat_cents), "exchangeFeeAmountLKR": _cents(ex),
            "ceypayFeeAmountLKR": _cents(pl), "totalFeesLKR": _cents(ex + pl),
            "netAmountLKR": _cents(p.fiat_cents - ex - pl),
        })
    return out


def lkr_fees(cents: int, exchange_pct: Decimal, platform_pct: Decimal) -> tuple[int, int]:
    return (int((cents * exchange_pct / 100).to_integral_value("ROUND_HALF_UP")),
            int((cents * platform_pct / 100).to_integral_value("ROUND_HALF_UP")))


def _cents(cents: int) -> str:
    return format_decimal(Decimal(cents) / 100)


def eip681(p: Payment) -> str:
    # int(): a stored NUMERIC comes back as a Decimal that may print as 3.00E+18, which no wallet reads
    return f"ethereum:{p.token}@{p.chain_id}/transfer?address={p.deposit_address}&uint256={int(p.amount_units)}"


def wire_status(p: Payment, now: datetime | None = None) -> str:
    if p.status == "underpaid" and p.expire_at <= (now or datetime.now(UTC)):
        return "FAILED"
    if p.status == "late" and p.late_from == "failed":  # late money on a failed payment: still FAILED
        return "FAILED"
    if p.status in ("refunded", "partially_refunded") and p.late_from is not None:
        # late money refunded (not accepted): the payment was never paid, it stays EXPIRED or FAILED
        return "FAILED" if p.late_from == "failed" else "EXPIRED"
    return WIRE_STATUS[p.status]


def checkout_url(public_url: str, p: Payment) -> str:
    return f"{public_url.rstrip('/')}/checkout/{p.id}"


def payment_object(p: Payment, public_url: str, head: int | None = None) -> dict[str, Any]:
    """The SDK's Payment (camelCase, trimmed decimals, RFC3339 seconds) plus the node's extras.
    ``head``: the indexer's last block on the payment's chain (``confirmations`` counts to it)."""
    uri = eip681(p)
    status = wire_status(p)
    out: dict[str, Any] = {
        "id": str(p.id), "merchantId": str(p.merchant_id), "paymentNo": p.payment_no,
        "merchantTradeNo": p.merchant_trade_no or "", "amount": format_decimal(p.amount),
        "currency": p.currency, "amountUsdt": format_units(p.amount_units), "provider": p.provider,
        "providerPayId": p.provider_pay_id, "qrContent": uri, "checkoutLink": checkout_url(public_url, p),
        "deepLink": uri, "status": status, "customerEmail": p.customer_email or "",
        # the spec: "" until paid (plugins read a hash as payment); the node's lastTxHash shows it sooner
        "txHash": (p.tx_hash or "") if status == "PAID" else "", "expireTime": rfc3339(p.expire_at),
        "createdAt": rfc3339(p.created_at),
        "updatedAt": rfc3339(p.updated_at), "feeBreakdown": fee_breakdown(p),
    }
    if p.branch_id:
        out["branchId"] = str(p.branch_id)
    if p.exchange_rate is not None:
        out["exchangeRate"] = format_decimal(p.exchange_rate)
    if p.paid_at:
        out["paidAt"] = rfc3339(p.paid_at)
        out["confirmedAt"] = rfc3339(p.paid_at)
    if p.customer_billing:
        out["customerBilling"] = p.customer_billing
    if p.goods:
        out["goods"] = p.goods
    if p.success_url:
        out["successUrl"] = out["successURL"] = p.success_url
    if p.cancel_url:
        out["cancelUrl"] = out["cancelURL"] = p.cancel_url
    if p.risk_score or p.risk_flags:
        out["riskScore"] = p.risk_score
        out["riskFlags"] = list(p.risk_flags or [])
    # the node's own fields (SDKs ignore unknown keys)
    out.update({
        "state": p.status, "mode": p.mode, "chainId": p.chain_id, "tokenAddress": p.token,
        "depositAddress": p.deposit_address, "amountLkr": _cents(p.fiat_cents),
        "receivedUsdt": format_units(p.received_final), "refundedUsdt": format_units(p.refunded_units),
        "late": p.late,
    })
    if p.late_decision:
        out["lateDecision"] = p.late_decision
    if p.payer:
        out["payer"] = p.payer
    if p.tx_hash:
        out["lastTxHash"] = p.tx_hash  # the transaction of the last money seen, paid or not
    if p.block_number is not None:  # the block of the last money seen; confirmations up to the indexed head
        out["blockNumber"] = int(p.block_number)
        if head is not None:
            out["confirmations"] = max(int(head), int(p.block_number)) - int(p.block_number) + 1
    return out


def checkout_object(p: Payment) -> dict[str, Any]:
    """``GET /v1/payments/{id}/checkout`` (public): what the hosted page needs and nothing private."""
    uri = eip681(p)
    out: dict[str, Any] = {
        "id": str(p.id), "paymentNo": p.payment_no, "amount": format_decimal(p.amount), "currency": p.currency,
        "amountUsdt": format_units(p.amount_units), "qrContent": uri, "deepLink": uri, "status": wire_status(p),
        "expireTime": rfc3339(p.expire_at), "createdAt": rfc3339(p.created_at),
    }
    if p.exchange_rate is not None:
        out["exchangeRate"] = format_decimal(p.exchange_rate)
    if p.paid_at:
        out["paidAt"] = rfc3339(p.paid_at)
    out.update({"state": p.status, "receivedUsdt": format_units(p.received_seen), "txHash": p.tx_hash or "",
                "depositAddress": p.deposit_address, "chainId": p.chain_id, "provider": p.provider})
    return out
