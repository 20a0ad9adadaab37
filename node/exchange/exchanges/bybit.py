"""Bybit v5 (unified trading account) through ccxt."""

from __future__ import annotations

from typing import Any, ClassVar

from node.exchange.exchanges.base import CcxtExchange


class Bybit(CcxtExchange):
    name = "bybit"
    ccxt_id = "bybit"
    options: ClassVar[dict[str, Any]] = {"fetchMarkets": {"types": ["spot"]}, "defaultType": "spot",
                                         "fetchCurrencies": False}

    def order_status_params(self) -> dict[str, Any]:
        # ccxt reads a unified account's order from the last 500 only after this acknowledgement
        return {"acknowledged": True}

    def order_params(self, client_order_id: str | None) -> dict[str, Any]:
        return {"orderLinkId": client_order_id} if client_order_id else {}
