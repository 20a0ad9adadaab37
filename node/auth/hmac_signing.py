"""The SDK wire protocol's request signature (sdk-wire-protocol.md section 1), byte for byte.

key     = raw 32 bytes SHA-256(secret)   (stored as its lowercase hex, the "hmacKey")
message = timestamp + UPPER(method) + path[?query] + body
header  = lowercase hex HMAC-SHA256
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal

MISSING_HEADERS = "missing required auth headers (x-api-key, x-timestamp, x-signature)"
BAD_TIMESTAMP = "timestamp expired or invalid"
INVALID_KEY = "invalid API key"
INVALID_SIGNATURE = "invalid signature"


def hmac_key_hex(secret: str) -> str:
    """What the server stores for a key: hex SHA-256 of the whole secret string."""
    return hashlib.sha256(secret.encode()).hexdigest()


def signature(hmac_key_hex_value: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    message = timestamp.encode() + method.upper().encode() + path.encode() + body
    return hmac.new(bytes.fromhex(hmac_key_hex_value), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: str, method: str, path: str, body: bytes = b"") -> str:
    return signature(hmac_key_hex(secret), timestamp, method, path, body)


def signatures_match(expected: str, given: str) -> bool:
    # exact string compare (lowercase hex), in constant time
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def new_key_pair(mode: Literal["live", "test"]) -> tuple[str, str]:
    """(key id, secret): ``ak_<mode>_`` + 32 hex and ``sk_<mode>_`` + 64 hex."""
    return f"ak_{mode}_{secrets.token_hex(16)}", f"sk_{mode}_{secrets.token_hex(32)}"


def parse_timestamp(raw: str, now_ms: int, window_ms: int) -> int | None:
    """The header's Unix ms if it is a plain integer within the window, else None."""
    if not raw or len(raw) > 20 or not raw.isascii() or not raw.isdigit():
        return None
    value = int(raw)
    return value if abs(now_ms - value) <= window_ms else None
