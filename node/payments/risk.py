"""Fraud scoring (platform-features.md section 11) with every input computed from our data.

The original's rules, each worth points (settings ``risk_*``; amounts in USDT), the score capped
at 100:

- payments in the last hour >= 10 -> 30, >= 5 -> 15; in 24 h >= 50 -> 25, >= 20 -> 10;
- amount vs the merchant's average of its last 50 payments > 5x -> 25, > 3x -> 10;
- amount > 10k -> 20, > 5k -> 10;
- 24 h volume with this payment > 50k -> 20;
- a new customer paying > 1k -> 15.

The original counted the customer only, by e-mail, so a payment without one could never reach a
block ("nothing is ever blocked"). Here the hour, day and volume rules also look at the merchant,
against its own normal: its payments in the last hour (24 h) flag when they reach 3x (5x) its
usual rate over the ``risk_baseline_days`` before the last 24 h, and at least
``risk_merchant_hour_min`` (``_day_min``) payments, so a shop's first sales are not a burst; its
24 h volume flags above 3x its usual daily volume and above ``risk_daily_volume_usdt``. A window
scores once: the customer's flag or the merchant's, whichever is worth more (a customer's burst
is the merchant's burst too). A payment without an e-mail comes from a payer never seen, so a
large one scores like a new customer's (``ANONYMOUS_LARGE_AMOUNT``). Live and test payments are
counted apart. Levels: LOW < ``risk_medium_score`` <= MEDIUM < ``risk_high_score`` <= HIGH <
``risk_block_score`` <= CRITICAL, which blocks creation (422 RISK_BLOCKED).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from node.config import Settings
from node.errors import NodeError
from node.money import WEI_PER_TOKEN


class RiskBlocked(NodeError):
    code = "RISK_BLOCKED"
    status = 422


@dataclass(frozen=True)
class CustomerStats:
    """The customer's (merchant, e-mail, mode) earlier payments."""

    last_hour: int
    last_day: int
    day_volume: int  # base units, expired and failed payments left out
    known: bool


@dataclass(frozen=True)
class MerchantNormal:
    """Where the merchant's own counts start to flag, from its usual day (whole numbers, worked
    out once per read of its baseline rather than on every payment)."""

    hour: tuple[int, int]  # payments in the last hour: flagged from, flagged high from
    day: tuple[int, int]  # ... in the last 24 h
    volume: int  # base units: a 24 h volume above this is flagged


def merchant_normal(usual_day_count: Decimal | None, usual_day_volume: Decimal | None,
                    settings: Settings) -> MerchantNormal:
    """``None``: less than a day of history, only the minimum counts and the volume floor apply."""
    s = settings
    per_day = usual_day_count or Decimal(0)
    per_hour = per_day / 24

    def bar(minimum: int, multiple: Decimal, usual: Decimal) -> int:
        return max(minimum, math.ceil(multiple * usual))
    return MerchantNormal(
        (bar(s.risk_merchant_hour_min, s.risk_merchant_multiple, per_hour),
         bar(s.risk_merchant_hour_min_high, s.risk_merchant_multiple_high, per_hour)),
        (bar(s.risk_merchant_day_min, s.risk_merchant_multiple, per_day),
         bar(s.risk_merchant_day_min_high, s.risk_merchant_multiple_high, per_day)),
        max(s.risk_daily_volume_usdt * WEI_PER_TOKEN,
            math.floor(s.risk_merchant_volume_multiple * (usual_day_volume or Decimal(0)))))


@dataclass
class MerchantStats:
    """The merchant's earlier payments of one mode, read at most every ``risk_stats_ttl_s`` and
    counted forward in between by the payments this process creates (``add``)."""

    last_hour: int
    last_day: int
    day_volume: int  # base units, expired and failed payments left out
    above_average: tuple[int, int] | None  # 3x and 5x the average of its last 50 payments (base units)
    normal: MerchantNormal

    def add(self, units: int) -> None:
        self.last_hour += 1
        self.last_day += 1
        self.day_volume += units


def merchant_stats(last_hour: int, last_day: int, day_volume: int, average: int | None, normal: MerchantNormal,
                   settings: Settings) -> MerchantStats:
    above = None if not average else (math.floor(settings.risk_average_multiple * average),
                                      math.floor(settings.risk_average_multiple_high * average))
    return MerchantStats(last_hour, last_day, day_volume, above, normal)


@dataclass(frozen=True)
class RiskScore:
    score: int
    flags: list[str]
    level: str


def level_of(score: int, settings: Settings) -> str:
    if score >= settings.risk_block_score:
        return "CRITICAL"
    if score >= settings.risk_high_score:
        return "HIGH"
    return "MEDIUM" if score >= settings.risk_medium_score else "LOW"


def _tier(count: int, low: int, high: int, points_low: int, points_high: int, flag: str) -> tuple[int, str] | None:
    if count >= high:
        return points_high, f"{flag}_HIGH"
    if count >= low:
        return points_low, flag
    return None


def _higher(customer: tuple[int, str] | None, merchant: tuple[int, str] | None) -> tuple[int, str] | None:
    if merchant is None or (customer is not None and customer[0] >= merchant[0]):
        return customer  # the customer's wins a tie
    return merchant


def score(amount: int, merchant: MerchantStats, customer: CustomerStats | None, settings: Settings) -> RiskScore:
    """The score of a new payment of ``amount`` base units; ``customer`` is None without an e-mail."""
    s, normal = settings, merchant.normal
    hits = [
        _higher(_tier(customer.last_hour, s.risk_hour_count, s.risk_hour_count_high, s.risk_hour_points,
                      s.risk_hour_points_high, "VELOCITY_HOUR") if customer else None,
                _tier(merchant.last_hour, *normal.hour, s.risk_hour_points, s.risk_hour_points_high,
                      "MERCHANT_VELOCITY_HOUR")),
        _higher(_tier(customer.last_day, s.risk_day_count, s.risk_day_count_high, s.risk_day_points,
                      s.risk_day_points_high, "VELOCITY_DAY") if customer else None,
                _tier(merchant.last_day, *normal.day, s.risk_day_points, s.risk_day_points_high,
                      "MERCHANT_VELOCITY_DAY")),
        _higher((s.risk_daily_volume_points, "DAILY_VOLUME")
                if customer and customer.day_volume + amount > s.risk_daily_volume_usdt * WEI_PER_TOKEN else None,
                (s.risk_daily_volume_points, "MERCHANT_DAILY_VOLUME")
                if merchant.day_volume + amount > normal.volume else None),
    ]
    if amount > s.risk_new_customer_amount_usdt * WEI_PER_TOKEN:
        if customer is None:
            hits.append((s.risk_new_customer_points, "ANONYMOUS_LARGE_AMOUNT"))
        elif not customer.known:
            hits.append((s.risk_new_customer_points, "NEW_CUSTOMER_LARGE_AMOUNT"))
    if merchant.above_average is not None:
        if amount > merchant.above_average[1]:
            hits.append((s.risk_average_points_high, "AMOUNT_5X_AVERAGE"))
        elif amount > merchant.above_average[0]:
            hits.append((s.risk_average_points, "AMOUNT_3X_AVERAGE"))
    if amount > s.risk_large_amount_usdt * WEI_PER_TOKEN:
        hits.append((s.risk_large_amount_points, "LARGE_AMOUNT"))
    elif amount > s.risk_medium_amount_usdt * WEI_PER_TOKEN:
        hits.append((s.risk_medium_amount_points, "MEDIUM_AMOUNT"))
    total, flags = 0, list[str]()
    for hit in hits:
        if hit is not None:
            total += hit[0]
            flags.append(hit[1])
    total = min(100, total)
    return RiskScore(total, flags, level_of(total, s))


def check(result: RiskScore, settings: Settings) -> None:
    if result.score >= settings.risk_block_score:
        raise RiskBlocked(f"payment blocked by risk rules (score {result.score}, level {result.level}: "
                          f"{', '.join(result.flags)})")
