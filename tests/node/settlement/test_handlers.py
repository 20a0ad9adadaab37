"""The balance projection's ledger rows: the COPY line written for a payment is the one its
ledger entry defines; other entries are left to be priced."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chain.events import PaymentReceived, Withdrawal
from node.settlement.handlers import entry_line, ledger_entry, ledger_lines

GATEWAY = "0x" + "11" * 20
uint = st.integers(min_value=0, max_value=2**96)


class TestLedgerLines:
    @given(amount=uint, fee=uint, rate=st.integers(min_value=0, max_value=2**62), block=uint,
           log_index=st.integers(min_value=0, max_value=2**31 - 1), pid=st.binary(min_size=32, max_size=32))
    def test_a_payment_line_equals_its_ledger_entry(self, amount: int, fee: int, rate: int, block: int,
                                                    log_index: int, pid: bytes) -> None:
        event = PaymentReceived(GATEWAY, block, "0x" + "ab" * 32, "0x" + "cd" * 32, log_index, pid, b"\x02" * 32,
                                "0x" + "33" * 20, "0x" + "44" * 20, amount, fee, 32_500, rate)
        entry = ledger_entry(56, event)
        assert entry is not None
        assert ledger_lines(56, [event], GATEWAY) == ([entry_line(entry)], [])

    def test_other_events_are_entries_and_foreign_addresses_are_skipped(self) -> None:
        withdrawal = Withdrawal(GATEWAY, 7, "0x" + "ab" * 32, "0x" + "cd" * 32, 1, b"\x05" * 32, "0x" + "44" * 20,
                                "0x" + "55" * 20, 10**18)
        foreign = Withdrawal("0x" + "99" * 20, 7, "0x" + "ab" * 32, "0x" + "cd" * 32, 2, b"\x05" * 32,
                             "0x" + "44" * 20, "0x" + "55" * 20, 10**18)
        lines, entries = ledger_lines(56, [withdrawal, foreign], GATEWAY)
        assert lines == []
        assert entries == [ledger_entry(56, withdrawal)]
        assert "\tWITHDRAWAL\t-1000000000000000000\t0\t\\N\t" in entry_line(entries[0])
        assert "\t\\\\x" + "05" * 32 + "\t" in entry_line(entries[0])
