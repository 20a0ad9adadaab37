"""The fixed-layout event decoders agree with eth-abi and with real logs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.artifacts import Artifacts
from chain.events import (
    DECODERS,
    EVENT_TYPES,
    ChainEvent,
    EventDecodeError,
    PaymentReceived,
    Transfer,
    decode_log,
    decode_logs,
)
from tests.fixtures.contracts import OPERATOR, PAYERS, UNIT, Chain

_PARAM = re.compile(r"^\s*(\w+)(\s+indexed)?\s+(\w+)\s*$")


def layout(event_type: type[ChainEvent]) -> list[tuple[str, bool]]:
    """(solidity type, indexed) per parameter, from the event's registered signature and ABI."""
    return DECLARED[event_type.__name__]


def value_strategy(sol_type: str) -> st.SearchStrategy[Any]:
    if sol_type == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if sol_type == "bytes32":
        return st.binary(min_size=32, max_size=32)
    if sol_type == "bool":
        return st.booleans()
    bits = int(sol_type.lstrip("uint") or 256)
    if sol_type.startswith("uint"):
        return st.integers(0, 2**bits - 1)
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def hex32(sol_type: str, value: Any) -> str:
    return "0x" + abi_encode([sol_type], [value]).hex()


DECLARED: dict[str, list[tuple[str, bool]]] = {}


@pytest.fixture(scope="module", autouse=True)
def declared(artifacts: Artifacts) -> None:
    """Every decoder's layout, read from the compiled ABIs (and ERC-20's for Transfer/Approval)."""
    for contract in artifacts.values():
        for entry in contract.abi:
            if entry.get("type") == "event" and entry["name"] in EVENT_TYPES:
                DECLARED[entry["name"]] = [(p["type"], p["indexed"]) for p in entry["inputs"]]
    assert set(DECLARED) == set(EVENT_TYPES), "an event class has no counterpart in the ABIs"


def test_every_topic0_matches_the_compiled_abi(artifacts: Artifacts) -> None:
    abi_topics = {t for c in artifacts.values() for t in c.event_topics.values()}
    for name, cls in EVENT_TYPES.items():
        assert cls.TOPIC0 in abi_topics, name
        assert DECODERS[cls.TOPIC0] is not None


@st.composite
def raw_logs(draw: st.DrawFn) -> tuple[type[ChainEvent], list[Any], dict[str, Any]]:
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES.values(), key=lambda c: c.__name__)))
    params = layout(event_type)
    values = [draw(value_strategy(t)) for t, _ in params]
    topics = [event_type.TOPIC0] + [hex32(t, v) for (t, indexed), v in zip(params, values, strict=True) if indexed]
    data_types = [t for t, indexed in params if not indexed]
    data_values = [v for (_, indexed), v in zip(params, values, strict=True) if not indexed]
    log = {
        "address": "0x" + draw(st.binary(min_size=20, max_size=20)).hex(),
        "blockNumber": hex(draw(st.integers(0, 2**40))),
        "blockHash": "0x" + draw(st.binary(min_size=32, max_size=32)).hex(),
        "transactionHash": "0x" + draw(st.binary(min_size=32, max_size=32)).hex(),
        "logIndex": hex(draw(st.integers(0, 10_000))),
        "topics": topics,
        "data": "0x" + abi_encode(data_types, data_values).hex(),
        "removed": False,
    }
    return event_type, values, log


class TestDecodersAgainstEthAbi:
    @settings(max_examples=600, deadline=None)
    @given(raw_logs())
    def test_decoded_values_match(self, case: tuple[type[ChainEvent], list[Any], dict[str, Any]]) -> None:
        event_type, values, log = case
        event = decode_log(log)
        assert type(event) is event_type
        assert event is not None
        params = layout(event_type)
        # eth-abi's own reading of the same log
        expected = []
        data_values = iter(abi_decode([t for t, i in params if not i], bytes.fromhex(log["data"][2:])))
        topics = iter(log["topics"][1:])
        for sol_type, indexed in params:
            raw = abi_decode([sol_type], bytes.fromhex(next(topics)[2:]))[0] if indexed else next(data_values)
            expected.append(raw)
        own = [getattr(event, f) for f in event.__dataclass_fields__][5:]
        assert own == [v.lower() if isinstance(v, str) else v for v in expected]
        assert own == [v.lower() if isinstance(v, str) else v for v in values]
        assert event.block_number == int(log["blockNumber"], 16)
        assert event.log_index == int(log["logIndex"], 16)
        assert event.address == log["address"]


class TestDecodeEdges:
    def log(self) -> dict[str, Any]:
        return {
            "address": "0x" + "ab" * 20, "blockNumber": "0x1", "blockHash": "0x" + "00" * 32,
            "transactionHash": "0x" + "11" * 32, "logIndex": "0x0",
            "topics": [Transfer.TOPIC0, "0x" + "00" * 12 + "22" * 20, "0x" + "00" * 12 + "33" * 20],
            "data": "0x" + "00" * 31 + "05",
        }

    def test_unknown_topic_is_skipped(self) -> None:
        log = self.log() | {"topics": ["0x" + "99" * 32]}
        assert decode_log(log) is None
        assert decode_logs([log, self.log()]) == [decode_log(self.log())]
        assert decode_log(self.log() | {"topics": []}) is None

    def test_wrong_layout_raises(self) -> None:
        with pytest.raises(EventDecodeError):
            decode_log(self.log() | {"data": "0x" + "00" * 31})
        with pytest.raises(EventDecodeError):
            decode_log(self.log() | {"topics": self.log()["topics"][:2]})

    def test_events_are_frozen(self) -> None:
        event = decode_log(self.log())
        assert isinstance(event, Transfer) and event.value == 5
        with pytest.raises(AttributeError):
            event.value = 6  # type: ignore[misc]


def test_decodes_real_logs_like_eth_abi(contracts: Chain) -> None:
    merchant = contracts.new_merchant()
    contracts.fund(PAYERS[0], 10 * UNIT)
    intent = contracts.intent(merchant, 10 * UNIT, UNIT)
    receipt = contracts.pay(PAYERS[0], intent)
    logs = contracts.rpc_call("eth_getLogs", [{"fromBlock": receipt["blockNumber"], "toBlock": receipt["blockNumber"]}])
    events = decode_logs(logs)
    assert [type(e) for e in events] == [Transfer, PaymentReceived]
    transfer, paid = events
    assert isinstance(transfer, Transfer) and isinstance(paid, PaymentReceived)
    assert (transfer.from_address, transfer.to_address, transfer.value) == (
        PAYERS[0].lower(), contracts.deployment.gateway.lower(), 10 * UNIT,
    )
    assert paid.payment_id == intent.payment_id and paid.block_hash == receipt["blockHash"]
    assert paid.transaction_hash == receipt["transactionHash"]
    assert OPERATOR  # the signer is not in the event: pay checks it on chain
