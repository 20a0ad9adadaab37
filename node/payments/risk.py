"""Fraud scoring (platform-features.md section 11) with every input computed from our data.

Score (capped at 100): customer payments in the last hour >= 10 -> 30, >= 5 -> 15; in 24 h
>= 50 -> 25, >= 20 -> 10; amount vs the merchant's recent average > 5x -> 25, > 3x -> 10;
amount > 10k USDT -> 20, > 5k -> 10; customer 24 h volume > 50k USDT -> 20; new customer
with amount > 1k USDT -> 15. Levels LOW < 30 <= MEDIUM < 60 <= HIGH < 80 <= CRITICAL (blocked).
The customer is the e-mail given; without one the customer rules have nothing to count.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.config import Settings
from node.errors import NodeError
from node.money import WEI_PER_TOKEN


class RiskBlocked(NodeError):
    code = "RISK_BLOCKED"
    status = 422


@dataclass(frozen=True)
class RiskInputs:
    customer_last_hour: int
    customer_last_day: int
    customer_day_volume: int  # base units
    customer_known: bool
    merchant_average: int | None  # base units, recent payments


@dataclass(frozen=True)
class RiskScore:
    score: int
    flags: list[str]

    @property
    def level(self) -> str:
        return "LOW" if self.score < 30 else "MEDIUM" if self.score < 60 else "HIGH" if self.score < 80 else "CRITICAL"


def score(amount: int, inputs: RiskInputs, settings: Settings, *, has_customer: bool) -> RiskScore:
    total = 0
    flags: list[str] = []

    def add(points: int, flag: str) -> None:
        nonlocal total
        total += points
        flags.append(flag)

    if has_customer:
        if inputs.customer_last_hour >= 10:
            add(30, "VELOCITY_HOUR_HIGH")
        elif inputs.customer_last_hour >= 5:
            add(15, "VELOCITY_HOUR")
        if inputs.customer_last_day >= 50:
            add(25, "VELOCITY_DAY_HIGH")
        elif inputs.customer_last_day >= 20:
            add(10, "VELOCITY_DAY")
        if inputs.customer_day_volume + amount > settings.risk_daily_volume_usdt * WEI_PER_TOKEN:
            add(20, "DAILY_VOLUME")
        if not inputs.customer_known and amount > settings.risk_new_customer_amount_usdt * WEI_PER_TOKEN:
            add(15, "NEW_CUSTOMER_LARGE_AMOUNT")
    if inputs.merchant_average:
        if amount > 5 * inputs.merchant_average:
            add(25, "AMOUNT_5X_AVERAGE")
        elif amount > 3 * inputs.merchant_average:
            add(10, "AMOUNT_3X_AVERAGE")
    if amount > settings.risk_large_amount_usdt * WEI_PER_TOKEN:
        add(20, "LARGE_AMOUNT")
    elif amount > settings.risk_medium_amount_usdt * WEI_PER_TOKEN:
        add(10, "MEDIUM_AMOUNT")
    result = RiskScore(min(100, total), flags)
    return result


def check(result: RiskScore, settings: Settings) -> None:
    if result.score >= settings.risk_block_score:
        raise RiskBlocked(f"payment blocked by risk rules (score {result.score}: {', '.join(result.flags)})")
