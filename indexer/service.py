"""`openpay run indexer`: wires the fetcher, follower, dispatch and leader lock for each chain the node
follows (its own and, when configured, the separate test chain)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import prometheus_client
import structlog

from chain.client import RpcClient
from chain.deploy import Deployment, deployment_path
from chain.errors import DeploymentError
from indexer.dispatch import Dispatcher
from indexer.fetcher import DepositWatch, LogFetcher
from indexer.follower import FinalityPolicy, Follower
from indexer.heads import HeadWatcher, ws_url_for
from indexer.leader import LeaderLock
from node.config import Settings
from node.db import Database
from node.indexing.handlers import ChainHandler, ChainScope
from node.indexing.registry import chain_handlers, deposit_watch
from node.logs import configure_logging
from node.runtime import tune_gc

log = structlog.get_logger(__name__)


def load_deployment(settings: Settings) -> Deployment:
    path = settings.deployment_file or deployment_path(settings.deployments_dir, settings.chain_id)
    if not Path(path).exists():
        raise DeploymentError(
            f"no deployments file at {path}; deploy the contracts first (`openpay dev` does it locally, "
            f"`ape run deploy` on BSC) or set OPENPAY_DEPLOYMENT_FILE"
        )
    return Deployment.load(Path(path))


def scope_of(deployment: Deployment) -> ChainScope:
    return ChainScope(chain_id=deployment.chain_id, gateway=deployment.gateway.lower(),
                      subscriptions=deployment.subscriptions.lower(), oracle=deployment.oracle.lower(),
                      token=deployment.token.lower())


def build_follower(
    settings: Settings, db: Database, rpc: RpcClient, deployment: Deployment, *,
    handlers: list[ChainHandler] | None = None, leader: LeaderLock | None = None,
    watch: DepositWatch | None = None, extra_addresses: tuple[str, ...] = (), heads: HeadWatcher | None = None,
) -> Follower:
    addresses = [deployment.gateway, deployment.subscriptions, deployment.oracle, *extra_addresses]
    if deployment.event_emitter:  # dev and test chains only: the benchmark's event source
        addresses.append(deployment.event_emitter)
    fetcher = LogFetcher(
        rpc, addresses, token=deployment.token, deposit_watch=watch,
        initial_range=settings.indexer_initial_range, max_range=settings.indexer_max_range,
        target_logs=settings.indexer_target_logs,
    )
    start = settings.indexer_start_block if settings.indexer_start_block is not None else deployment.start_block
    return Follower(
        db, rpc, fetcher, Dispatcher(handlers if handlers is not None else chain_handlers()),
        scope_of(deployment), FinalityPolicy(settings.indexer_finality, settings.indexer_confirmations),
        start_block=start, live_blocks=settings.indexer_live_blocks,
        poll_interval=settings.indexer_poll_interval_s, leader=leader, heads=heads,
    )


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    deployment = load_deployment(settings)
    db = Database.from_settings(settings)
    rpc = RpcClient(settings.rpc_urls)
    leader = LeaderLock(db.dsn, deployment.chain_id)
    try:
        acquire = asyncio.ensure_future(leader.acquire())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([acquire, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not acquire.done():
            acquire.cancel()
            return
        stopped.cancel()
        heads = HeadWatcher(settings.indexer_ws_url or ws_url_for(settings.rpc_urls[0]))
        heads.start()
        follower = build_follower(settings, db, rpc, deployment, leader=leader,
                                  watch=deposit_watch(db, settings, deployment.chain_id),
                                  heads=heads)
        log.info("indexing", chain_id=deployment.chain_id, gateway=deployment.gateway,
                 from_block=follower.start_block)
        try:
            await follower.run(stop)
        finally:
            await heads.stop()
    finally:
        await leader.release()
        await rpc.aclose()
        await db.dispose()


def run_indexer(settings: Settings) -> None:
    configure_logging(settings, role="indexer")
    tune_gc()
    if settings.metrics_port:
        prometheus_client.start_http_server(settings.metrics_port, addr=settings.api_host)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async def follow(chain: Settings) -> None:
            try:
                await serve(chain, stop)
            finally:
                stop.set()  # one chain's follower ending ends the role: the supervisor restarts it whole

        # the separate test chain, if any, is followed beside the node's chain (its own leader lock)
        await asyncio.gather(*(follow(chain) for chain in [settings, *filter(None, [settings.test_chain()])]))

    asyncio.run(main())
