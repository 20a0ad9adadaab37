"""ED25519 webhook keys: generation, sealing at rest, and the two header sets.

Private keys are sealed with AES-256-GCM under a key derived from the
``webhook_keys_secret`` setting; the merchant id is the associated data, so a
sealed key copied to another merchant's row does not open.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from node.config import Settings

USER_AGENT = "OpenLankaPayment-Webhook/1.0"
DEV_SECRET_PREFIX = "dev-only-"  # noqa: S105 - a marker, not a secret
_NONCE = 12


class KeySealingError(RuntimeError):
    pass


def _sealing_key(settings: Settings) -> AESGCM:
    secret = settings.webhook_keys_secret.get_secret_value()
    if settings.is_production and secret.startswith(DEV_SECRET_PREFIX):
        raise KeySealingError("OPENPAY_WEBHOOK_KEYS_SECRET must be set in production")
    return AESGCM(hashlib.sha256(b"openpay-webhook-keys\x00" + secret.encode()).digest())


def generate_key(settings: Settings, merchant_id: uuid.UUID) -> tuple[bytes, bytes]:
    """A new key pair: (raw 32-byte public key, sealed private key)."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    nonce = os.urandom(_NONCE)
    sealed = nonce + _sealing_key(settings).encrypt(nonce, raw_private, merchant_id.bytes)
    return public, sealed


def open_key(settings: Settings, merchant_id: uuid.UUID, sealed: bytes) -> Ed25519PrivateKey:
    raw = _sealing_key(settings).decrypt(sealed[:_NONCE], sealed[_NONCE:], merchant_id.bytes)
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_b64(public_key: bytes) -> str:
    """The spec's form: standard padded base64 of the raw 32-byte key (44 chars)."""
    return base64.b64encode(public_key).decode()


@dataclass(frozen=True)
class MerchantKeys:
    """The active key signs everything; keys in their grace period co-sign the Standard Webhooks header."""

    active: Ed25519PrivateKey
    grace: tuple[Ed25519PrivateKey, ...] = ()


def signed_headers(
    keys: MerchantKeys, *, delivery_id: uuid.UUID, event_type: str, attempt: int, body: bytes,
    now_ms: int | None = None,
) -> dict[str, str]:
    """Both header sets for one attempt (a new timestamp and new signatures every attempt)."""
    ts_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    ts_s = ts_ms // 1000
    msg_id = str(delivery_id)
    original = keys.active.sign(str(ts_ms).encode("ascii") + body)
    standard_message = f"{msg_id}.{ts_s}.".encode("ascii") + body
    standard = " ".join(
        "v1a," + base64.b64encode(key.sign(standard_message)).decode()
        for key in (keys.active, *keys.grace)
    )
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Signature": base64.b64encode(original).decode(),
        "X-Webhook-Timestamp": str(ts_ms),
        "X-Webhook-Event": event_type,
        "X-Webhook-ID": msg_id,
        "X-Webhook-Attempt": str(attempt),
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts_s),
        "webhook-signature": standard,
    }
