"""A hand-written SDK client that signs exactly as the wire protocol says (section 1), the way
the official SDKs do: key "<keyId>.<secret>", HMAC key = raw SHA-256(secret), message =
ms timestamp + METHOD + path(+?query) + body, lowercase hex."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from typing import Any

import httpx
import orjson

_clock = itertools.count(int(time.time() * 1000))


def signature(secret: str, ts: str, method: str, path: str, body: bytes) -> str:
    key = hashlib.sha256(secret.encode()).digest()
    return hmac.new(key, ts.encode() + method.upper().encode() + path.encode() + body, hashlib.sha256).hexdigest()


class SdkClient:
    def __init__(self, http: httpx.AsyncClient, credential: str) -> None:
        self.http = http
        self.key_id, _, self.secret = credential.partition(".")

    async def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                      headers: dict[str, str] | None = None) -> httpx.Response:
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else b"")
        ts = str(max(next(_clock), int(time.time() * 1000)))
        signed = {"x-api-key": self.key_id, "x-timestamp": ts,
                  "x-signature": signature(self.secret, ts, method, path, data),
                  "content-type": "application/json", **(headers or {})}
        return await self.http.request(method, path, content=data, headers=signed)

    async def create_payment(self, **body: Any) -> httpx.Response:
        return await self.request("POST", "/v1/sdk/payments", body)

    async def get_payment(self, payment_id: str) -> httpx.Response:
        return await self.request("GET", f"/v1/sdk/payments/{payment_id}")
