"""Exchanges behind one Protocol (ccxt underneath): the treasury's market prices, balances,
deposit addresses, withdrawals and USDT sales. One module per exchange."""

from __future__ import annotations

from node.config import Settings
from node.exchange.exchanges.base import (
    Balance,
    DepositAddress,
    Exchange,
    ExchangeAuthFailed,
    ExchangeError,
    ExchangeInsufficientBalance,
    ExchangeMaintenance,
    ExchangeRateLimited,
    ExchangeUnavailable,
    Order,
    Ticker,
    WithdrawalReceipt,
)

EXCHANGES = ("binance", "bybit", "kucoin")


def exchange_for(settings: Settings, name: str) -> Exchange:
    """The adapter of ``name`` with its credentials (and URL override) from settings."""
    from node.errors import NotFound
    from node.exchange.exchanges.binance import Binance
    from node.exchange.exchanges.bybit import Bybit
    from node.exchange.exchanges.kucoin import KuCoin

    classes = {"binance": Binance, "bybit": Bybit, "kucoin": KuCoin}
    if name not in classes:
        raise NotFound(f"unknown exchange {name[:20]}", code="EXCHANGE_NOT_FOUND")
    credentials = settings.exchange_credentials.get(name, {})
    return classes[name](credentials, base_url=settings.exchange_urls.get(name), timeout_s=settings.exchange_timeout_s)


__all__ = [
    "EXCHANGES", "Balance", "DepositAddress", "Exchange", "ExchangeAuthFailed", "ExchangeError",
    "ExchangeInsufficientBalance", "ExchangeMaintenance", "ExchangeRateLimited", "ExchangeUnavailable", "Order",
    "Ticker", "WithdrawalReceipt", "exchange_for",
]
