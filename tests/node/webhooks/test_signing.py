"""Signatures verify with an independent Ed25519 verifier over the specs' messages."""

from __future__ import annotations

import base64
import uuid

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from node.config import Environment, Settings
from node.webhooks.signing import (
    USER_AGENT,
    KeySealingError,
    MerchantKeys,
    generate_key,
    open_key,
    public_key_b64,
    signed_headers,
)
from tests.node.webhooks.verify import verify_original, verify_standard

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


def _keys() -> tuple[MerchantKeys, str]:
    merchant = uuid.uuid4()
    public, sealed = generate_key(SETTINGS, merchant)
    return MerchantKeys(active=open_key(SETTINGS, merchant, sealed)), public_key_b64(public)


class TestHeaders:
    @hsettings(max_examples=50, deadline=None)
    @given(body=st.binary(max_size=2000), attempt=st.integers(1, 5))
    def test_both_signatures_verify_independently(self, body: bytes, attempt: int) -> None:
        keys, public = _keys()
        delivery_id = uuid.uuid4()
        headers = {k.lower(): v for k, v in signed_headers(
            keys, delivery_id=delivery_id, event_type="payment.paid", attempt=attempt, body=body).items()}
        assert verify_original(public, headers, body)
        assert verify_standard(public, headers, body)
        assert not verify_original(public, headers, body + b" ")
        assert not verify_standard(public, headers, body + b" ")

    def test_headers_are_exactly_the_specs(self) -> None:
        keys, public = _keys()
        delivery_id = uuid.uuid4()
        headers = signed_headers(keys, delivery_id=delivery_id, event_type="payment.paid", attempt=3,
                                 body=b"{}", now_ms=1_700_000_000_123)
        assert set(headers) == {
            "Content-Type", "User-Agent", "X-Webhook-Signature", "X-Webhook-Timestamp", "X-Webhook-Event",
            "X-Webhook-ID", "X-Webhook-Attempt", "webhook-id", "webhook-timestamp", "webhook-signature",
        }
        assert "X-Signature" not in headers
        assert headers["User-Agent"] == USER_AGENT == "OpenLankaPayment-Webhook/1.0"
        assert headers["X-Webhook-Timestamp"] == "1700000000123"
        assert headers["webhook-timestamp"] == "1700000000"
        assert headers["X-Webhook-ID"] == headers["webhook-id"] == str(delivery_id)
        assert headers["X-Webhook-Attempt"] == "3"
        assert headers["X-Webhook-Event"] == "payment.paid"
        assert len(headers["X-Webhook-Signature"]) == 88
        assert headers["webhook-signature"].startswith("v1a,")
        assert len(public) == 44 and len(base64.b64decode(public)) == 32

    def test_a_stale_timestamp_is_refused_by_the_verifier(self) -> None:
        keys, public = _keys()
        headers = {k.lower(): v for k, v in signed_headers(
            keys, delivery_id=uuid.uuid4(), event_type="payment.paid", attempt=1, body=b"{}",
            now_ms=1_700_000_000_000).items()}
        assert not verify_original(public, headers, b"{}")
        assert not verify_standard(public, headers, b"{}")

    def test_a_grace_key_cosigns_the_standard_header(self) -> None:
        (new, new_public), (old, old_public) = _keys(), _keys()
        keys = MerchantKeys(active=new.active, grace=(old.active,))
        headers = {k.lower(): v for k, v in signed_headers(
            keys, delivery_id=uuid.uuid4(), event_type="payment.paid", attempt=1, body=b"{}").items()}
        assert len(headers["webhook-signature"].split(" ")) == 2
        assert verify_standard(new_public, headers, b"{}") and verify_standard(old_public, headers, b"{}")
        assert verify_original(new_public, headers, b"{}") and not verify_original(old_public, headers, b"{}")


class TestSealing:
    def test_a_sealed_key_opens_only_for_its_merchant(self) -> None:
        merchant = uuid.uuid4()
        _, sealed = generate_key(SETTINGS, merchant)
        open_key(SETTINGS, merchant, sealed)
        with pytest.raises(InvalidTag):
            open_key(SETTINGS, uuid.uuid4(), sealed)

    def test_a_sealed_key_needs_the_same_secret(self) -> None:
        merchant = uuid.uuid4()
        _, sealed = generate_key(SETTINGS, merchant)
        other = SETTINGS.model_copy(update={"webhook_keys_secret": SETTINGS.webhook_keys_secret.__class__("x" * 40)})
        with pytest.raises(InvalidTag):
            open_key(other, merchant, sealed)

    def test_production_refuses_the_dev_secret(self) -> None:
        production = SETTINGS.model_copy(update={"environment": Environment.production})
        with pytest.raises(KeySealingError):
            generate_key(production, uuid.uuid4())
