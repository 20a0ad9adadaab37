"""Posts the USDT/LKR rate to ``OpenPayRateOracle`` when it moved more than the configured
deviation from the last round, or the heartbeat passed (``chain.oracle.should_post``)."""

from __future__ import annotations

import time
from decimal import Decimal

import structlog
from sqlalchemy import insert

from chain.errors import ChainError
from node.config import Settings
from node.db import Database
from node.errors import NotFound
from node.exchange import rates
from node.exchange.rate_models import OraclePost
from node.payments import onchain

log = structlog.get_logger(__name__)


async def post_if_due(db: Database, settings: Settings, operator: onchain.Operator) -> bool:
    from chain.oracle import RateOracle, should_post

    dep = onchain.deployment(settings)
    async with db.unit_of_work() as session:
        try:
            current = await rates.active(session, settings, "USDT", "LKR")
        except NotFound:
            return False
    if current.source == "SEED":
        return False  # never publish the placeholder on chain
    oracle = RateOracle(operator.rpc, dep.oracle, onchain.artifacts()["OpenPayRateOracle"])
    try:
        last = await oracle.latest_round()
        if not should_post(current.rate, last, threshold=Decimal(settings.oracle_deviation),
                           heartbeat=settings.oracle_heartbeat_s, now=int(time.time())):
            return False
        # the contract refuses an observation in its future (a host clock ahead of the chain's)
        # and one not newer than the last round: clamp to the head's time, skip what is not new
        head = await operator.rpc.request("eth_getBlockByNumber", ["latest", False])
        observed_at = min(int(current.fetched_at.timestamp()), int(head["timestamp"], 16))
        if last is not None and observed_at <= last.updated_at:
            return False
        receipt = await oracle.post(operator.sender, current.rate, observed_at)
    except ChainError as exc:
        log.warning("oracle post failed", error=str(exc)[:300])
        return False
    async with db.unit_of_work() as session:
        await session.execute(insert(OraclePost).values(chain_id=dep.chain_id, rate=current.rate,
                                                        tx_hash=receipt.tx_hash))
    log.info("rate posted on chain", rate=str(current.rate), tx=receipt.tx_hash)
    return True
