"""KuCoin spot through ccxt (needs the API passphrase as ``password``)."""

from __future__ import annotations

from typing import Any, ClassVar

from node.exchange.exchanges.base import CcxtExchange


class KuCoin(CcxtExchange):
    name = "kucoin"
    ccxt_id = "kucoin"
    options: ClassVar[dict[str, Any]] = {"fetchMarkets": {"types": ["spot"], "fetchTickersFees": False},
                                         "defaultType": "spot"}

    async def _markets(self) -> None:
        if not self.client.markets:
            # spot only: no margin symbol lists (private calls the treasury does not need)
            await self._call("markets", lambda: self.client.load_markets(False, {"marginables": False}))

    def order_params(self, client_order_id: str | None) -> dict[str, Any]:
        return {"clientOid": client_order_id} if client_order_id else {}
