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


@dataclass
class MerchantStats:
    """The merchant's earlier payments of one mode, read at most every ``risk_stats_ttl_s`` and
    counted forward in between by the payments this process creates (``add``)."""

    last_hour: int
    last_day: int
    day_volume: int  # base units, expired and failed payments left out
    average: int | None  # base units, its last 50 payments
    usual_day_count: Decimal | None  # per day over the baseline; None with less than a day of history
    usual_day_volume: Decimal | None

    def add(self, units: int) -> None:
        self.last_hour += 1
        self.last_day += 1
        self.day_volume += units


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


def _tier(count: int, low: Decimal | int, high: Decimal | int, points: tuple[int, int],
          flag: str) -> tuple[int, str] | None:
    if count >= high:
        return points[1], f"{flag}_HIGH"
    if count >= low:
        return points[0], flag
    return None


def _merchant_tier(count: int, usual: Decimal | None, minimum: tuple[int, int], points: tuple[int, int],
                   flag: str, settings: Settings) -> tuple[int, str] | None:
    usual = usual or Decimal(0)
    return _tier(count, max(Decimal(minimum[0]), settings.risk_merchant_multiple * usual),
                 max(Decimal(minimum[1]), settings.risk_merchant_multiple_high * usual), points, flag)


def _higher(*candidates: tuple[int, str] | None) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for candidate in candidates:  # the first wins a tie: the customer's
        if candidate is not None and (best is None or candidate[0] > best[0]):
            best = candidate
    return best


def score(amount: int, merchant: MerchantStats, customer: CustomerStats | None, settings: Settings) -> RiskScore:
    """The score of a new payment of ``amount`` base units; ``customer`` is None without an e-mail."""
    s = settings
    hits: list[tuple[int, str] | None] = []
    hour_points, day_points = (s.risk_hour_points, s.risk_hour_points_high), (s.risk_day_points, s.risk_day_points_high)
    usual_hour = merchant.usual_day_count / 24 if merchant.usual_day_count is not None else None
    hits.append(_higher(
        _tier(customer.last_hour, s.risk_hour_count, s.risk_hour_count_high, hour_points, "VELOCITY_HOUR")
        if customer else None,
        _merchant_tier(merchant.last_hour, usual_hour, (s.risk_merchant_hour_min, s.risk_merchant_hour_min_high),
                       hour_points, "MERCHANT_VELOCITY_HOUR", s)))
    hits.append(_higher(
        _tier(customer.last_day, s.risk_day_count, s.risk_day_count_high, day_points, "VELOCITY_DAY")
        if customer else None,
        _merchant_tier(merchant.last_day, merchant.usual_day_count,
                       (s.risk_merchant_day_min, s.risk_merchant_day_min_high), day_points,
                       "MERCHANT_VELOCITY_DAY", s)))
    volume_limit = s.risk_daily_volume_usdt * WEI_PER_TOKEN
    merchant_limit = max(Decimal(volume_limit), s.risk_merchant_volume_multiple * (merchant.usual_day_volume or 0))
    hits.append(_higher(
        (s.risk_daily_volume_points, "DAILY_VOLUME")
        if customer and customer.day_volume + amount > volume_limit else None,
        (s.risk_daily_volume_points, "MERCHANT_DAILY_VOLUME")
        if merchant.day_volume + amount > merchant_limit else None))
    if amount > s.risk_new_customer_amount_usdt * WEI_PER_TOKEN:
        if customer is None:
            hits.append((s.risk_new_customer_points, "ANONYMOUS_LARGE_AMOUNT"))
        elif not customer.known:
            hits.append((s.risk_new_customer_points, "NEW_CUSTOMER_LARGE_AMOUNT"))
    if merchant.average:
        if amount > s.risk_average_multiple_high * merchant.average:
            hits.append((s.risk_average_points_high, "AMOUNT_5X_AVERAGE"))
        elif amount > s.risk_average_multiple * merchant.average:
            hits.append((s.risk_average_points, "AMOUNT_3X_AVERAGE"))
    if amount > s.risk_large_amount_usdt * WEI_PER_TOKEN:
        hits.append((s.risk_large_amount_points, "LARGE_AMOUNT"))
    elif amount > s.risk_medium_amount_usdt * WEI_PER_TOKEN:
        hits.append((s.risk_medium_amount_points, "MEDIUM_AMOUNT"))
    found = [hit for hit in hits if hit is not None]
    total = min(100, sum(points for points, _ in found))
    return RiskScore(total, [flag for _, flag in found], level_of(total, s))


def check(result: RiskScore, settings: Settings) -> None:
    if result.score >= settings.risk_block_score:
        raise RiskBlocked(f"payment blocked by risk rules (score {result.score}, level {result.level}: "
                          f"{', '.join(result.flags)})")
