"""OpenPayRateOracle: a Chainlink-compatible USDT/LKR feed."""

from __future__ import annotations

from chain.events import AnswerUpdated, NewRound
from tests.fixtures.contracts import ADDRESSES, OPERATOR, REPORTER, Chain

RATE = 300_50_000_000


class TestOracle:
    def test_post_and_read(self, contracts: Chain) -> None:
        assert contracts.call("OpenPayRateOracle", "decimals") == 8
        assert contracts.call("OpenPayRateOracle", "description") == "USDT / LKR"
        now = contracts.now()
        receipt = contracts.transact(REPORTER, "OpenPayRateOracle", "postAnswer", RATE, now)
        new_round, updated = contracts.events(receipt)
        assert isinstance(new_round, NewRound) and new_round.round_id == 1
        assert isinstance(updated, AnswerUpdated) and (updated.current, updated.updated_at) == (RATE, now)
        assert contracts.call("OpenPayRateOracle", "latestRoundData") == (1, RATE, now, now, 1)
        contracts.mine(60)
        contracts.transact(REPORTER, "OpenPayRateOracle", "postAnswer", RATE + 1, now + 30)
        assert contracts.call("OpenPayRateOracle", "getRoundData", 1) == (1, RATE, now, now, 1)
        assert contracts.call("OpenPayRateOracle", "latestRoundData")[:2] == (2, RATE + 1)
        assert contracts.call("OpenPayRateOracle", "latestAnswer") == RATE + 1

    def test_no_data(self, contracts: Chain) -> None:
        for fn, args in (("latestRoundData", ()), ("getRoundData", (5,)), ("latestAnswer", ())):
            try:
                contracts.call("OpenPayRateOracle", fn, *args)
            except Exception as exc:
                assert getattr(exc, "name", None) == "NoDataPresent"
            else:
                raise AssertionError(f"{fn} did not revert")

    def test_rejects_zero_negative_stale_future(self, contracts: Chain) -> None:
        now = contracts.now()
        contracts.transact(REPORTER, "OpenPayRateOracle", "postAnswer", RATE, now)
        for answer, observed, name in (
            (0, now, "InvalidAnswer"),
            (-5, now, "InvalidAnswer"),
            (RATE, now, "StaleAnswer"),  # not newer than the latest round
            (RATE, now + 10_000, "FutureAnswer"),
        ):
            error = contracts.expect_revert(REPORTER, "OpenPayRateOracle", "postAnswer", answer, observed)
            assert error.name == name, (answer, observed)
        contracts.mine(7 * 3600)
        error = contracts.expect_revert(REPORTER, "OpenPayRateOracle", "postAnswer", RATE, now + 1)
        assert error.name == "StaleAnswer"  # older than maxAge
        assert contracts.call("OpenPayRateOracle", "latestRound") == 1

    def test_only_reporter_posts(self, contracts: Chain) -> None:
        for caller in (OPERATOR, ADDRESSES[9]):
            error = contracts.expect_revert(caller, "OpenPayRateOracle", "postAnswer", RATE, contracts.now())
            assert error.name == "AccessControlUnauthorizedAccount"
