"""Payment numbers that can never collide and do not reveal volume.

``PAY-YYYYMMDD-`` + 8 hex and the TEST provider's ``mock_`` + 12 hex (sdk-wire-protocol.md) are
unique columns. Random digits collide by the birthday bound (a 32-bit suffix after ~65,000
payments in a day) and turn a payment creation into an error. Instead each is a keyed
permutation (a Feistel network) of the payment's intent sequence, which the database hands out
once: distinct sequences give distinct numbers, and the numbers look random, so consecutive
payments do not tell a customer how many payments the node makes.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

import asyncpg

from node.config import Settings

_ROUNDS = 4


@functools.lru_cache(maxsize=4)
def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"openpay payment numbers", hashlib.sha256).digest()


def permute(value: int, bits: int, key: bytes) -> int:
    """A bijection of ``[0, 2**bits)`` (``bits`` even), keyed."""
    half = bits // 2
    mask = (1 << half) - 1
    size = (half + 7) // 8
    keyed = _keyed_hash(key, size)
    left, right = (value >> half) & mask, value & mask
    for round_ in range(_ROUNDS):
        digest = keyed.copy()  # the same digest as blake2b(data, key=key), without keying anew each time
        digest.update(right.to_bytes(size, "big") + bytes((round_,)))
        left, right = right, left ^ (int.from_bytes(digest.digest(), "big") & mask)
    return (left << half) | right


@functools.lru_cache(maxsize=16)
def _keyed_hash(key: bytes, size: int) -> Any:
    return hashlib.blake2b(key=key, digest_size=size)


def payment_no(settings: Settings, now: datetime, sequence: int) -> str:
    key = _key(settings.secrets_key.get_secret_value())
    return f"PAY-{now:%Y%m%d}-{permute(sequence % 2**32, 32, key):08x}"


def provider_pay_id(settings: Settings, provider: str, sequence: int) -> str:
    key = _key(settings.secrets_key.get_secret_value())
    return ("mock_" if provider == "TEST" else "pp_") + f"{permute(sequence % 2**48, 48, key):012x}"


class IntentSequence:
    """Intent sequence numbers, taken from the database sequence a block at a time: one round
    trip per ``BLOCK`` payments instead of one per payment. Numbers stay unique (the database
    hands each block out once); a block a process did not use up is skipped after a restart,
    which only leaves a gap in the gateway's paid-id bitmap."""

    BLOCK = 100
    _SQL = "SELECT nextval('payments.intent_seq') FROM generate_series(1, $1)"

    def __init__(self) -> None:
        self._free: list[int] = []
        self._lock = asyncio.Lock()

    async def next(self, connect: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]) -> int:
        if not self._free:
            async with self._lock:
                if not self._free:
                    async with connect() as driver:
                        rows = await driver.fetch(self._SQL, self.BLOCK)
                    self._free = sorted((int(row[0]) for row in rows), reverse=True)
        return self._free.pop()
