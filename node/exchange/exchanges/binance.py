"""Binance spot (api/v3) and wallet (sapi) through ccxt."""

from __future__ import annotations

from typing import Any, ClassVar

from node.exchange.exchanges.base import CcxtExchange


class Binance(CcxtExchange):
    name = "binance"
    ccxt_id = "binance"
    # spot only: the treasury never trades derivatives; currencies come from the wallet config call
    options: ClassVar[dict[str, Any]] = {"fetchMarkets": {"types": ["spot"]}, "defaultType": "spot",
                                         "fetchCurrencies": False, "fetchMargins": False}
