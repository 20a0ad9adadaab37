"""Money: token amounts are ``int`` base units, LKR is ``int`` cents, rates are ``Decimal``.

The wire shows decimals as strings with trailing zeros trimmed (``"75.00"`` -> ``"75"``).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

USDT_DECIMALS = 18
WEI_PER_TOKEN = 10**USDT_DECIMALS
CENTS_PER_LKR = 100


class InvalidAmount(ValueError):
    """Text that is not a finite, plain decimal number."""


def parse_decimal(text: str) -> Decimal:
    """A client's decimal string, strictly: no exponents, NaN or infinities."""
    stripped = text.strip()
    if not stripped or any(c not in "0123456789.-+" for c in stripped):
        raise InvalidAmount(text)
    try:
        value = Decimal(stripped)
    except InvalidOperation as exc:
        raise InvalidAmount(text) from exc
    if not value.is_finite():
        raise InvalidAmount(text)
    return value


def format_decimal(value: Decimal | int) -> str:
    """``Decimal("75.00")`` -> ``"75"``, ``Decimal("0.50")`` -> ``"0.5"``; never exponent form."""
    if isinstance(value, int):
        return str(value)
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def to_base_units(amount: Decimal, decimals: int = USDT_DECIMALS) -> int:
    """Token amount -> base units, rounding down what cannot be represented."""
    with localcontext() as ctx:
        ctx.prec = 100
        return int((amount * (Decimal(10) ** decimals)).to_integral_value(rounding=ROUND_DOWN))


def from_base_units(units: int, decimals: int = USDT_DECIMALS) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 100
        return Decimal(units) / (Decimal(10) ** decimals)


def format_units(units: int, decimals: int = USDT_DECIMALS) -> str:
    """Base units as a trimmed decimal string: 1500000000000000000 -> "1.5" (integer arithmetic:
    a payment object formats eight amounts, and Decimal division was most of its cost)."""
    whole, fraction = divmod(abs(units), 10**decimals)
    sign = "-" if units < 0 else ""
    if not fraction:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(fraction).rjust(decimals, '0').rstrip('0')}"


def lkr_to_cents(amount: Decimal) -> int:
    return int((amount * CENTS_PER_LKR).to_integral_value(rounding=ROUND_HALF_UP))


def cents_to_lkr(cents: int) -> Decimal:
    return Decimal(cents) / CENTS_PER_LKR
