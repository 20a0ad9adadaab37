"""The exchange Protocol, our types, domain errors, and the shared ccxt implementation.

Each exchange module only says which ccxt class it is and how its requests differ (network ids,
order parameters); the translation from ccxt's unified structures to our types and from ccxt's
exceptions to our errors is here, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async
from ccxt.base import errors as ccxt_errors

from node.errors import NodeError


class ExchangeError(NodeError):
    code = "EXCHANGE_ERROR"
    status = 502


class ExchangeInsufficientBalance(ExchangeError):
    code = "EXCHANGE_INSUFFICIENT_BALANCE"
    status = 409


class ExchangeRateLimited(ExchangeError):
    code = "EXCHANGE_RATE_LIMITED"
    status = 429


class ExchangeMaintenance(ExchangeError):
    code = "EXCHANGE_MAINTENANCE"
    status = 503


class ExchangeUnavailable(ExchangeError):
    code = "EXCHANGE_UNAVAILABLE"
    status = 503


class ExchangeAuthFailed(ExchangeError):
    code = "EXCHANGE_AUTH_FAILED"
    status = 502


class ExchangeRejected(ExchangeError):
    code = "EXCHANGE_REJECTED"
    status = 422


@dataclass(frozen=True)
class Ticker:
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None


@dataclass(frozen=True)
class Balance:
    currency: str
    free: Decimal
    used: Decimal
    total: Decimal


@dataclass(frozen=True)
class DepositAddress:
    currency: str
    network: str
    address: str
    tag: str | None


@dataclass(frozen=True)
class WithdrawalReceipt:
    id: str
    currency: str
    amount: Decimal
    address: str
    status: str | None


@dataclass(frozen=True)
class Order:
    id: str
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    status: str  # open, closed, canceled, expired, rejected
    filled: Decimal | None
    client_order_id: str | None


class Exchange(Protocol):
    """What the treasury needs from an exchange."""

    @property
    def name(self) -> str: ...

    async def ticker(self, symbol: str = "USDT/USD") -> Ticker: ...
    async def balances(self) -> dict[str, Balance]: ...
    async def deposit_address(self, currency: str = "USDT", network: str = "BSC") -> DepositAddress: ...
    async def withdraw(self, currency: str, amount: Decimal, address: str, network: str = "BSC",
                       tag: str | None = None) -> WithdrawalReceipt: ...
    async def sell_usdt(self, amount: Decimal, *, price: Decimal | None = None, symbol: str = "USDT/USD",
                        client_order_id: str | None = None) -> Order: ...
    async def order_status(self, order_id: str, symbol: str = "USDT/USD") -> Order: ...
    async def close(self) -> None: ...


# our network names -> ccxt's unified network codes (BNB Smart Chain is "BEP20" in ccxt)
UNIFIED_NETWORKS = {"BSC": "BEP20"}


def _network(network: str) -> str:
    return UNIFIED_NETWORKS.get(network.upper(), network.upper())


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


T = TypeVar("T")

# most specific first: ccxt's classes inherit from one another
_ERRORS: list[tuple[type[Exception], type[ExchangeError], str]] = [
    (ccxt_errors.InsufficientFunds, ExchangeInsufficientBalance, "insufficient balance on the exchange"),
    (ccxt_errors.OnMaintenance, ExchangeMaintenance, "the exchange is under maintenance"),
    (ccxt_errors.RateLimitExceeded, ExchangeRateLimited, "the exchange's rate limit was hit"),
    (ccxt_errors.DDoSProtection, ExchangeRateLimited, "the exchange's rate limit was hit"),
    (ccxt_errors.AuthenticationError, ExchangeAuthFailed, "the exchange refused our credentials"),
    (ccxt_errors.PermissionDenied, ExchangeAuthFailed, "the exchange refused our credentials"),
    # an exchange down for maintenance answers 503, which ccxt reports as ExchangeNotAvailable
    (ccxt_errors.ExchangeNotAvailable, ExchangeMaintenance, "the exchange is unavailable or under maintenance"),
    (ccxt_errors.NetworkError, ExchangeUnavailable, "the exchange could not be reached"),
    (ccxt_errors.InvalidOrder, ExchangeRejected, "the exchange rejected the order"),
    (ccxt_errors.BadRequest, ExchangeRejected, "the exchange rejected the request"),
]


class CcxtExchange:
    """An :class:`Exchange` over a ccxt async client."""

    name: ClassVar[str] = ""
    ccxt_id: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, credentials: dict[str, str], *, base_url: str | None = None, timeout_s: float = 10.0) -> None:
        cls = getattr(ccxt_async, self.ccxt_id)
        self.client: Any = cls({
            "apiKey": credentials.get("apiKey"), "secret": credentials.get("secret"),
            "password": credentials.get("password"), "timeout": int(timeout_s * 1000),
            "enableRateLimit": False, "options": dict(self.options),
        })
        if base_url:
            self._point_at(base_url.rstrip("/"))

    def _point_at(self, base: str) -> None:
        """Every API section's host replaced by ``base``, paths kept (tests: a local server)."""
        api = self.client.urls["api"]
        for section, url in list(api.items()):
            if isinstance(url, str):
                parts = urlsplit(url)
                api[section] = base + parts.path
        self.client.hostname = base.split("://", 1)[1]

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except ccxt_errors.BaseError as exc:
            for ccxt_type, ours, text in _ERRORS:
                if isinstance(exc, ccxt_type):
                    raise ours(f"{self.name} {what}: {text}") from exc
            raise ExchangeError(f"{self.name} {what}: {type(exc).__name__}") from exc

    async def _markets(self) -> None:
        if not self.client.markets:
            await self._call("markets", self.client.load_markets)

    # -------------------------------------------------------------- the Protocol

    async def ticker(self, symbol: str = "USDT/USD") -> Ticker:
        await self._markets()
        raw = await self._call("ticker", lambda: self.client.fetch_ticker(symbol))
        return Ticker(symbol, _dec(raw.get("bid")), _dec(raw.get("ask")), _dec(raw.get("last")))

    async def balances(self) -> dict[str, Balance]:
        await self._markets()
        raw = await self._call("balances", lambda: self.client.fetch_balance(self.balance_params()))
        out: dict[str, Balance] = {}
        for currency, entry in raw.items():
            if isinstance(entry, dict) and "total" in entry and currency not in ("free", "used", "total", "info"):
                out[currency] = Balance(currency, _dec(entry.get("free")) or Decimal(0),
                                        _dec(entry.get("used")) or Decimal(0), _dec(entry.get("total")) or Decimal(0))
        return out

    async def deposit_address(self, currency: str = "USDT", network: str = "BSC") -> DepositAddress:
        await self._markets()
        raw = await self._call("deposit address", lambda: self.client.fetch_deposit_address(
            currency, {"network": _network(network)}))
        return DepositAddress(currency, network, str(raw["address"]), raw.get("tag"))

    async def withdraw(self, currency: str, amount: Decimal, address: str, network: str = "BSC",
                       tag: str | None = None) -> WithdrawalReceipt:
        await self._markets()
        raw = await self._call("withdrawal", lambda: self.client.withdraw(
            currency, float(amount), address, tag, {"network": _network(network)}))
        return WithdrawalReceipt(str(raw["id"]), currency, amount, address, raw.get("status"))

    async def sell_usdt(self, amount: Decimal, *, price: Decimal | None = None, symbol: str = "USDT/USD",
                        client_order_id: str | None = None) -> Order:
        await self._markets()
        kind = "market" if price is None else "limit"
        params = self.order_params(client_order_id)
        raw = await self._call("order", lambda: self.client.create_order(
            symbol, kind, "sell", float(amount), None if price is None else float(price), params))
        # some exchanges answer an order with its id only: what we asked for fills the gaps
        filled_in = {"side": "sell", "type": kind, "amount": amount, "price": price, "status": "open",
                     "clientOrderId": client_order_id}
        return self._order({**filled_in, **{k: v for k, v in raw.items() if v is not None}}, symbol)

    async def order_status(self, order_id: str, symbol: str = "USDT/USD") -> Order:
        await self._markets()
        raw = await self._call("order status", lambda: self.client.fetch_order(order_id, symbol,
                                                                                self.order_status_params()))
        return self._order(raw, symbol)

    async def close(self) -> None:
        await self.client.close()

    # -------------------------------------------------------------- per exchange

    def balance_params(self) -> dict[str, Any]:
        return {}

    def order_status_params(self) -> dict[str, Any]:
        return {}

    def order_params(self, client_order_id: str | None) -> dict[str, Any]:
        return {"clientOrderId": client_order_id} if client_order_id else {}

    def _order(self, raw: dict[str, Any], symbol: str) -> Order:
        return Order(
            id=str(raw["id"]), symbol=raw.get("symbol") or symbol, side=raw.get("side") or "sell",
            type=raw.get("type") or "market", amount=_dec(raw.get("amount")) or Decimal(0),
            price=_dec(raw.get("price")), status=raw.get("status") or "open", filled=_dec(raw.get("filled")),
            client_order_id=raw.get("clientOrderId"),
        )
