"""The USDT/LKR rate feed (``OpenPayRateOracle``): post rates, read rounds."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from chain.artifacts import ContractArtifact
from chain.client import RpcClient
from chain.intents import fixed_to_rate, rate_to_fixed
from chain.txsender import Receipt, TxSender


@dataclass(frozen=True)
class RoundData:
    """One round of the feed; ``answer`` is LKR per USDT with 8 decimals."""

    round_id: int
    answer: int
    started_at: int
    updated_at: int

    @property
    def rate(self) -> Decimal:
        return fixed_to_rate(self.answer)


def should_post(current: Decimal, last: RoundData | None, *, threshold: Decimal, heartbeat: int, now: int) -> bool:
    """Whether a new rate is worth a transaction: it moved more than ``threshold`` (a fraction,
    e.g. ``Decimal("0.005")``) from the last round, or the last round is older than ``heartbeat``
    seconds, or there is no round yet."""
    if last is None or now - last.updated_at >= heartbeat:
        return True
    return abs(current - last.rate) > last.rate * threshold


class RateOracle:
    """Reads and posts the feed at ``address``."""

    def __init__(self, rpc: RpcClient, address: str, artifact: ContractArtifact) -> None:
        self.rpc = rpc
        self.address = address
        self.artifact = artifact

    async def _call(self, name: str, *args: object) -> tuple[object, ...]:
        data = self.artifact.encode_call(name, *args)
        result = await self.rpc.request("eth_call", [{"to": self.address, "data": "0x" + data.hex()}, "latest"])
        return self.artifact.decode_output(name, bytes.fromhex(str(result)[2:]))

    async def latest_round(self) -> RoundData | None:
        """The latest round, or ``None`` before the first post."""
        (round_id,) = await self._call("latestRound")
        if round_id == 0:
            return None
        return await self.round(int(str(round_id)))

    async def round(self, round_id: int) -> RoundData:
        rid, answer, started, updated, _ = await self._call("getRoundData", round_id)
        return RoundData(int(str(rid)), int(str(answer)), int(str(started)), int(str(updated)))

    async def post(self, sender: TxSender, rate: Decimal, observed_at: int) -> Receipt:
        """Posts ``rate`` (LKR per USDT) observed at ``observed_at``; the sender needs REPORTER_ROLE."""
        data = self.artifact.encode_call("postAnswer", rate_to_fixed(rate), observed_at)
        return await sender.send(self.address, data)
