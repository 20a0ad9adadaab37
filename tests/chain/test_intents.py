"""EIP-712 intents: Python hashing/signing matches the gateway exactly."""

from __future__ import annotations

import uuid

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.deposits import deposit_address
from chain.intents import (
    InvalidIntent,
    InvalidSignature,
    PaymentIntent,
    bytes32_to_uuid,
    recover_signer,
    sign_intent,
    uuid_to_bytes32,
)
from tests.fixtures.contracts import KEYS, OPERATOR, Chain

uint256 = st.integers(0, 2**256 - 1)
intents = st.builds(
    PaymentIntent,
    payment_id=st.binary(min_size=32, max_size=32),
    merchant_id=st.binary(min_size=32, max_size=32),
    token=st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b)),
    amount=uint256, fee=uint256, fiat_amount=uint256, rate=uint256, deadline=uint256,
)


class TestOnChain:
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(intent=intents, signer=st.sampled_from(KEYS[:6]))
    def test_python_digest_signature_and_deposit_address_match_the_contract(
        self, contracts: Chain, intent: PaymentIntent, signer: str
    ) -> None:
        domain = contracts.domain
        assert contracts.call("OpenPayGateway", "hashIntent", intent.as_tuple()) == intent.digest(domain)
        signature = sign_intent(intent, domain, signer)
        expected = Account.from_key(signer).address
        assert recover_signer(intent, domain, signature) == expected
        on_chain = contracts.call("OpenPayGateway", "intentSigner", intent.as_tuple(), signature)
        assert to_checksum_address(on_chain) == expected
        predicted = deposit_address(intent, domain, contracts.deployment.forwarder_implementation)
        assert predicted == contracts.deposit_address(intent)

    def test_domain_separator_matches(self, contracts: Chain) -> None:
        assert contracts.call("OpenPayGateway", "domainSeparator") == contracts.domain.separator


class TestOffChain:
    @settings(max_examples=30, deadline=None)
    @given(intent=intents)
    def test_digest_matches_eth_account_typed_data(self, intent: PaymentIntent) -> None:
        from chain.intents import IntentDomain

        domain = IntentDomain(97, "0x" + "12" * 20)
        message = encode_typed_data(full_message=intent.typed_data(domain))
        signed = Account.sign_message(message, KEYS[1])
        assert signed.message_hash == intent.digest(domain)
        assert recover_signer(intent, domain, bytes(signed.signature)) == OPERATOR

    def test_uuid_roundtrip(self) -> None:
        value = uuid.uuid4()
        raw = uuid_to_bytes32(value)
        assert len(raw) == 32 and raw[:16] == bytes(16)
        assert bytes32_to_uuid(raw) == value
        with pytest.raises(InvalidIntent):
            bytes32_to_uuid(b"\x01" * 32)

    def test_rejects_out_of_range_fields(self) -> None:
        good = dict(payment_id=bytes(32), merchant_id=bytes(32), token="0x" + "00" * 20,
                    amount=1, fee=0, fiat_amount=1, rate=1, deadline=1)
        for bad in ({"amount": -1}, {"rate": 2**256}, {"payment_id": b"x"}, {"token": "0x12"}):
            with pytest.raises(InvalidIntent):
                PaymentIntent(**(good | bad))  # type: ignore[arg-type]

    def test_rejects_malleable_or_malformed_signatures(self) -> None:
        from chain.intents import SECP256K1_N, IntentDomain

        intent = PaymentIntent(bytes(32), bytes(32), "0x" + "00" * 20, 1, 0, 1, 1, 1)
        domain = IntentDomain(1, "0x" + "00" * 20)
        signature = sign_intent(intent, domain, KEYS[1])
        s = int.from_bytes(signature[32:64], "big")
        high_s = signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])
        for bad in (signature[:64], high_s, signature[:64] + b"\x01"):
            with pytest.raises(InvalidSignature):
                recover_signer(intent, domain, bad)
