"""Gas-aware sweep batching: which deposits to sweep now, in which batches, and which to leave.

The payments domain's sweeper asks :func:`plan_sweep_batches` with what waits at each deposit
address and the current gas price: nothing is swept while gas costs more than
``sweep_max_gas_price_wei``; deposits holding less than ``sweep_dust_usdt`` are left (reported,
they are swept once more arrives) unless something waits for them (a refund of late money); the rest go
largest first in batches of ``sweep_batch_size``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from node.config import Settings
from node.money import InvalidAmount, parse_decimal, to_base_units


@dataclass(frozen=True)
class SweepCandidate:
    key: Hashable  # the caller's handle (payment id, intent)
    received: int  # token base units waiting at the deposit address
    data: Any = None
    needed: bool = False  # something waits for this money (a refund of late money): swept even as dust


@dataclass(frozen=True)
class SkippedSweep:
    candidate: SweepCandidate
    reason: str  # "dust" | "gas_price_too_high"


def dust_threshold(settings: Settings) -> int:
    try:
        return to_base_units(parse_decimal(settings.sweep_dust_usdt))
    except InvalidAmount:
        return to_base_units(Decimal(1))


def plan_sweep_batches(candidates: Sequence[SweepCandidate], gas_price: int, settings: Settings,
                       ) -> tuple[list[list[SweepCandidate]], list[SkippedSweep]]:
    """(batches to sweep now, skipped with their reasons)."""
    if gas_price > settings.sweep_max_gas_price_wei:
        return [], [SkippedSweep(c, "gas_price_too_high") for c in candidates if c.received > 0]
    dust = dust_threshold(settings)
    skipped = [SkippedSweep(c, "dust") for c in candidates if 0 < c.received < dust and not c.needed]
    eligible = sorted((c for c in candidates if c.received >= dust or (c.needed and c.received > 0)),
                      key=lambda c: c.received, reverse=True)
    size = max(1, int(getattr(settings, "sweep_batch_size", 50)))
    return [eligible[i:i + size] for i in range(0, len(eligible), size)], skipped
