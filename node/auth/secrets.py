"""Secrets at rest (API keys' HMAC keys, TOTP secrets): AES-256-GCM under a key from settings.

A database dump alone is then not enough to sign API requests or mint TOTP codes;
the ``secrets_key`` setting is needed too. Format: ``v1:`` + base64url(nonce || ciphertext).
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from node.config import Settings

_PREFIX = "v1:"


class SecretBox:
    def __init__(self, key_material: str) -> None:
        self._aead = AESGCM(hashlib.sha256(b"openpay-secrets-v1:" + key_material.encode()).digest())

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        key = settings.secrets_key.get_secret_value()
        if settings.is_production and key.startswith("dev-only-"):
            raise RuntimeError("OPENPAY_SECRETS_KEY must be set in production")
        return cls(key)

    def seal(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, *, context: str) -> str:
        if not sealed.startswith(_PREFIX):
            raise ValueError("unknown secret format")
        raw = base64.urlsafe_b64decode(sealed[len(_PREFIX):])
        return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
