"""A receiver's verification, written from the specs (not from our signer):

- the original protocol: ``X-Webhook-Signature`` = standard base64 of an Ed25519
  signature over ASCII(``X-Webhook-Timestamp``, Unix ms) followed directly by the body;
- Standard Webhooks: ``webhook-signature`` = space-separated ``v1a,<base64 sig>``
  entries, each an Ed25519 signature over ``{webhook-id}.{webhook-timestamp}.{body}``
  with the timestamp in seconds; any one valid entry verifies.
Both reject timestamps more than 300 s away from now.
"""

from __future__ import annotations

import base64
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TOLERANCE_S = 300


def _key(public_key_b64: str) -> Ed25519PublicKey:
    raw = base64.b64decode(public_key_b64, validate=True)
    assert len(raw) == 32
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_original(public_key_b64: str, headers: dict[str, str], body: bytes) -> bool:
    timestamp = headers["x-webhook-timestamp"]
    if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > TOLERANCE_S * 1000:
        return False
    signature = base64.b64decode(headers["x-webhook-signature"], validate=True)
    try:
        _key(public_key_b64).verify(signature, timestamp.encode("ascii") + body)
    except InvalidSignature:
        return False
    return True


def verify_standard(public_key_b64: str, headers: dict[str, str], body: bytes) -> bool:
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_S:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    key = _key(public_key_b64)
    for entry in headers["webhook-signature"].split(" "):
        version, _, value = entry.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(value, validate=True), signed)
        except InvalidSignature:
            continue
        return True
    return False
