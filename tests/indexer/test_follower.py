"""The indexer against a real anvil and PostgreSQL: exactly once, final only when final,
reorgs undone in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from chain.client import RpcClient
from chain.events import ChainEvent, PaymentReceived
from indexer.dispatch import Dispatcher
from indexer.follower import Follower
from node.bus import OutboxMessage
from node.indexing.handlers import ChainHandler, ChainScope
from node.indexing.registry import chain_handlers
from node.resources import Resources
from tests.fixtures.contracts import PAYERS, UNIT
from tests.fixtures.indexing import IndexedChain


async def sync(follower: Follower, max_steps: int = 10_000) -> int:
    steps = 0
    while await follower.step():
        steps += 1
        assert steps < max_steps
    return steps


class PaymentsSeen(ChainHandler):
    """A domain handler as payments will write one: it sees, finalises and reverts."""

    name = "test.payments"
    events = (PaymentReceived,)

    def __init__(self) -> None:
        self.pending: set[bytes] = set()
        self.final_ids: set[bytes] = set()
        self.reverted_ids: list[bytes] = []

    async def seen(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        self.pending |= {e.payment_id for e in events if isinstance(e, PaymentReceived)}

    async def final(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        ids = {e.payment_id for e in events if isinstance(e, PaymentReceived)}
        self.pending -= ids
        self.final_ids |= ids

    async def reverted(self, session: AsyncSession, scope: ChainScope, events: Sequence[ChainEvent]) -> None:
        for e in events:
            if isinstance(e, PaymentReceived):
                self.pending.discard(e.payment_id)
                self.reverted_ids.append(e.payment_id)


class TestBackfill:
    async def test_database_equals_chain_after_backfill(
        self, indexed_chain: IndexedChain, resources: Resources, chain_rpc_async: RpcClient,
    ) -> None:
        indexed_chain.activity(60, seed=3)
        indexed_chain.emit_payments(3_000)
        follower = indexed_chain.follower(resources.db, chain_rpc_async, indexer_initial_range=3,
                                          indexer_target_logs=400)
        await sync(follower)
        await indexed_chain.assert_db_equals_chain(resources.db)
        assert not await follower.step(), "an idle chain still had work"

    async def test_reading_blocks_again_counts_nothing_twice(
        self, indexed_chain: IndexedChain, resources: Resources, chain_rpc_async: RpcClient,
    ) -> None:
        from indexer.operations import resync

        indexed_chain.activity(40, seed=4)
        follower = indexed_chain.follower(resources.db, chain_rpc_async)
        await sync(follower)
        await resync(indexed_chain.settings, indexed_chain.deployment.start_block)
        # a new follower reads the rewound cursor (the first one keeps its own in memory)
        again = indexed_chain.follower(resources.db, chain_rpc_async)
        assert (await again.cursor()).number < (await follower.cursor()).number
        await sync(again)
        await indexed_chain.assert_db_equals_chain(resources.db)


class TestFinality:
    async def test_logs_are_pending_until_deep_enough_and_only_then_move_balances(
        self, indexed_chain: IndexedChain, resources: Resources, chain_rpc_async: RpcClient,
    ) -> None:
        chain = indexed_chain.chain
        merchant = chain.new_merchant()
        chain.fund(PAYERS[0], 100 * UNIT)
        chain.pay(PAYERS[0], chain.intent(merchant, 100 * UNIT, fee=2 * UNIT))
        handler = PaymentsSeen()
        follower = indexed_chain.follower(resources.db, chain_rpc_async, indexer_confirmations=3)
        follower.dispatcher = Dispatcher([*chain_handlers(), handler])
        await sync(follower)
        assert len(handler.pending) == 1 and not handler.final_ids
        async with resources.db.unit_of_work() as session:
            finals = (await session.execute(text(
                "SELECT final FROM chain.logs WHERE chain_id = :c AND event = 'PaymentReceived'"),
                {"c": indexed_chain.chain_id})).scalars().all()
            balance = (await session.execute(text(
                "SELECT available FROM settlement.merchant_balances WHERE chain_id = :c AND merchant_key = :m"),
                {"c": indexed_chain.chain_id, "m": merchant})).scalar_one_or_none()
        assert finals == [False] and balance is None

        for _ in range(3):
            chain.mine()
        await sync(follower)
        assert handler.final_ids and not handler.pending
        await indexed_chain.assert_db_equals_chain(resources.db)


class TestReorgs:
    @pytest.mark.parametrize("depth", [1, 3, 10])
    async def test_a_reorg_is_undone_and_the_canonical_chain_applied(
        self, indexed_chain: IndexedChain, resources: Resources, chain_rpc_async: RpcClient, depth: int,
    ) -> None:
        chain = indexed_chain.chain
        merchant = chain.new_merchant()
        chain.fund(PAYERS[0], 10_000 * UNIT)
        chain.fund(PAYERS[1], 10_000 * UNIT)
        handler = PaymentsSeen()
        follower = indexed_chain.follower(resources.db, chain_rpc_async, indexer_confirmations=depth + 5)
        follower.dispatcher = Dispatcher([*chain_handlers(), handler])
        await sync(follower)

        fork_block = int(chain.rpc.request("eth_blockNumber"), 16)
        snapshot = chain.rpc.request("evm_snapshot")
        orphaned = [chain.intent(merchant, (i + 1) * UNIT) for i in range(depth)]
        for intent in orphaned:
            chain.pay(PAYERS[0], intent)
        await sync(follower)
        assert handler.pending == {i.payment_id for i in orphaned}

        chain.rpc.request("evm_revert", [snapshot])
        canonical = [chain.intent(merchant, (i + 50) * UNIT) for i in range(depth + 1)]
        for intent in canonical:
            chain.pay(PAYERS[1], intent)
        await sync(follower)

        assert sorted(handler.reverted_ids) == sorted(i.payment_id for i in orphaned)
        assert handler.pending == {i.payment_id for i in canonical}
        await indexed_chain.assert_db_equals_chain(resources.db, balances_final=False)
        async with resources.db.unit_of_work() as session:
            reorg = (await session.execute(text(
                "SELECT fork_block, depth FROM chain.reorgs WHERE chain_id = :c"), {"c": indexed_chain.chain_id}
            )).one()
            message = (await session.execute(
                select(OutboxMessage.payload).where(OutboxMessage.type == "chain.reorg",
                                                    OutboxMessage.key == f"chain:{indexed_chain.chain_id}")
            )).scalar_one()
        assert tuple(reorg) == (fork_block, depth)
        assert message["forkBlock"] == fork_block and message["depth"] == depth
        assert sum(u["event"] == "PaymentReceived" for u in message["undone"]) == depth

        for _ in range(depth + 5):
            chain.mine()
        await sync(follower)
        assert handler.final_ids == {i.payment_id for i in canonical}
        await indexed_chain.assert_db_equals_chain(resources.db)


class TestOperations:
    async def test_status_tells_cursor_head_lag_and_the_last_reorg(
        self, indexed_chain: IndexedChain, resources: Resources, chain_rpc_async: RpcClient,
    ) -> None:
        from indexer.operations import status

        indexed_chain.activity(10, seed=8)
        follower = indexed_chain.follower(resources.db, chain_rpc_async)
        await sync(follower)
        indexed_chain.chain.mine()
        indexed_chain.chain.mine()
        state = await status(indexed_chain.settings)
        head = int(indexed_chain.chain.rpc.request("eth_blockNumber"), 16)
        assert (state.head, state.cursor, state.lag_blocks) == (head, head - 2, 2)
        assert state.logs == len(indexed_chain.chain_logs())
        assert state.last_reorg is None and state.leader_running is False
