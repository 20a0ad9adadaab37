"""Payment numbers keep the wire format and never repeat: a collision would fail a payment."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from node.config import Settings
from node.payments.numbers import payment_no, permute, provider_pay_id

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
DAY = datetime(2026, 11, 25, tzinfo=UTC)


def test_a_day_of_payments_has_no_repeated_number() -> None:
    # random 8-hex suffixes collide with even odds after ~77,000; consecutive sequences never do
    numbers = {payment_no(SETTINGS, DAY, sequence) for sequence in range(1, 200_001)}
    assert len(numbers) == 200_000
    assert all(re.fullmatch(r"PAY-20261125-[0-9a-f]{8}", n) for n in list(numbers)[:1000])


def test_test_provider_ids_are_mock_and_12_hex_and_distinct() -> None:
    ids = [provider_pay_id(SETTINGS, "TEST", sequence) for sequence in range(1, 50_001)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"mock_[0-9a-f]{12}", i) for i in ids[:1000])
    assert provider_pay_id(SETTINGS, "BINANCE", 7).startswith("pp_")


def test_consecutive_payments_do_not_look_consecutive() -> None:
    first, second = (int(payment_no(SETTINGS, DAY, s)[-8:], 16) for s in (1000, 1001))
    assert abs(first - second) > 1


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_the_permutation_is_one_to_one(a: int, b: int) -> None:
    key = b"k" * 32
    assert (permute(a, 32, key) == permute(b, 32, key)) == (a == b)
    assert 0 <= permute(a, 32, key) < 2**32
