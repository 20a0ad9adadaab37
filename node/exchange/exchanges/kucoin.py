"""KuCoin spot through ccxt (needs the API passphrase as ``password``)."""

from __future__ import annotations

from typing import Any, ClassVar

from node.exchange.exchanges.base import CcxtExchange


class KuCoin(CcxtExchange):
    name = "kucoin"
    ccxt_id = "kucoin"
    options: ClassVar[dict[str, Any]] = {"fetchMarkets": {"types": ["spot"]}, "defaultType": "spot",
                                         "fetchCurrencies": False}
