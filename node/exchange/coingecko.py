"""CoinGecko's public ``/api/v3/simple/price`` as a rate source (httpx).

The original fetched USDT, USDC, BTC, ETH and BNB in LKR every five minutes.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Protocol

import httpx

from node.money import InvalidAmount, parse_decimal

# our symbol -> CoinGecko coin id
COIN_IDS: dict[str, str] = {
    "USDT": "tether", "USDC": "usd-coin", "BTC": "bitcoin", "ETH": "ethereum", "BNB": "binancecoin",
}


class RateSourceError(Exception):
    """The source did not answer with usable prices (network, 429, 5xx, odd JSON)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateSource(Protocol):
    name: str

    async def prices(self, quote: str) -> dict[str, Decimal]:
        """Price of each known coin in ``quote`` (e.g. LKR per USDT)."""
        ...


class CoinGecko:
    name = "COINGECKO"

    def __init__(self, http: httpx.AsyncClient, base_url: str, *, api_key: str | None = None,
                 timeout: float = 10.0) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    async def prices(self, quote: str = "LKR") -> dict[str, Decimal]:
        vs = quote.lower()
        params = {"ids": ",".join(COIN_IDS.values()), "vs_currencies": vs}
        headers = {"accept": "application/json"}
        if self.api_key:
            headers["x-cg-demo-api-key"] = self.api_key
        try:
            reply = await self.http.get(f"{self.base_url}/api/v3/simple/price", params=params, headers=headers,
                                        timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise RateSourceError(f"coingecko unreachable: {exc!r}"[:300]) from exc
        if reply.status_code == 429:
            retry = reply.headers.get("retry-after")
            raise RateSourceError("coingecko rate limit (429)",
                                  retry_after=float(retry) if retry and retry.isdigit() else None)
        if reply.status_code >= 400:
            raise RateSourceError(f"coingecko answered {reply.status_code}")
        try:
            # numbers as Decimal straight from the text: a float would round prices past 17 digits
            body = json.loads(reply.content, parse_float=Decimal, parse_constant=Decimal)
        except ValueError as exc:
            raise RateSourceError("coingecko answered with something that is not JSON") from exc
        return _transform(body, vs)


def _transform(body: object, vs: str) -> dict[str, Decimal]:
    if not isinstance(body, dict):
        raise RateSourceError("coingecko: unexpected JSON shape")
    out: dict[str, Decimal] = {}
    for symbol, coin in COIN_IDS.items():
        entry = body.get(coin)
        if not isinstance(entry, dict) or vs not in entry:
            continue
        raw = entry[vs]
        if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
            continue
        try:
            value = raw if isinstance(raw, Decimal) else parse_decimal(str(raw))
        except (InvalidAmount, ArithmeticError):
            continue
        if not value.is_finite():
            continue
        if value > 0:
            out[symbol] = value
    if "USDT" not in out:
        raise RateSourceError("coingecko: no USDT price in the answer")
    return out
