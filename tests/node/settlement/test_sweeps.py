"""The gas-aware sweep plan."""

from __future__ import annotations

from node.config import Settings
from node.settlement.sweeps import SweepCandidate, plan_sweep_batches
from tests.fixtures.settlement import usdt


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


class TestPlan:
    def test_largest_first_in_batches_with_dust_reported(self) -> None:
        candidates = [SweepCandidate(i, usdt(i)) for i in range(0, 8)] + [SweepCandidate("d", usdt("0.5"))]
        batches, skipped = plan_sweep_batches(candidates, 10**9, settings(sweep_batch_size=3, sweep_dust_usdt="1"))
        assert [[c.key for c in b] for b in batches] == [[7, 6, 5], [4, 3, 2], [1]]
        assert [(s.candidate.key, s.reason) for s in skipped] == [("d", "dust")]

    def test_nothing_is_swept_while_gas_is_too_expensive(self) -> None:
        candidates = [SweepCandidate(1, usdt(100))]
        batches, skipped = plan_sweep_batches(candidates, 6 * 10**9, settings(sweep_max_gas_price_wei=5 * 10**9))
        assert batches == [] and [s.reason for s in skipped] == ["gas_price_too_high"]
