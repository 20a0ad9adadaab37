"""Amount formatting is exact: the wire shows what the chain holds, to the last wei."""

from __future__ import annotations

from decimal import Decimal, localcontext

from hypothesis import given
from hypothesis import strategies as st

from node.money import format_decimal, format_units


def _by_decimal(units: int, decimals: int) -> str:
    with localcontext() as ctx:
        ctx.prec = 100
        return format_decimal(Decimal(units) / (Decimal(10) ** decimals))


@given(st.integers(-(2**256), 2**256), st.sampled_from([0, 2, 6, 8, 18]))
def test_format_units_equals_the_exact_decimal_form(units: int, decimals: int) -> None:
    assert format_units(units, decimals) == _by_decimal(units, decimals)


def test_examples() -> None:
    assert format_units(1_500_000_000_000_000_000) == "1.5"
    assert format_units(1) == "0.000000000000000001"
    assert format_units(0) == "0"
    assert format_units(-25, 2) == "-0.25"
    assert format_units(10**18 * 7) == "7"
