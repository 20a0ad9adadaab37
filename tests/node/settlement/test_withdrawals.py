"""Withdrawals against anvil + PostgreSQL: reservation, concurrency, sending, completion, failure."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select

from chain.intents import uuid_to_bytes32
from node.bus import OutboxMessage
from node.settlement import service
from node.settlement.errors import InsufficientBalance, MerchantNotAllowed, PayoutAddressNotSet
from node.settlement.models import ChainSend
from tests.fixtures.contracts import OPERATOR, PAYERS, UNIT
from tests.fixtures.settlement import Money, usdt


async def request(money: Money, merchant_id: uuid.UUID, amount: int, key: str | None = None) -> uuid.UUID:
    async with money.db.unit_of_work() as session:
        w, _ = await service.request_withdrawal(session, money.ctx, merchant_id, amount, idempotency_key=key,
                                                actor_type="SYSTEM", actor_id=None)
        return w.id


async def events_for(money: Money, object_id: uuid.UUID) -> list[str]:
    async with money.db.unit_of_work() as session:
        rows = await session.execute(select(OutboxMessage.type).where(OutboxMessage.key == str(object_id))
                                     .order_by(OutboxMessage.created_at))
        return list(rows.scalars())


class TestWithdrawalLifecycle:
    async def test_an_approved_withdrawal_is_sent_indexed_and_completed(self, money: Money) -> None:
        account = await money.merchant(usdt(100))
        before = money.ic.chain.token_balance(PAYERS[5])
        wid = await request(money, account.merchant_id, usdt(40))
        await money.run()
        w = await money.withdrawal(wid)
        assert w.status == "COMPLETED" and w.tx_hash and w.block_number
        assert money.ic.chain.token_balance(PAYERS[5]) - before == usdt(40)
        assert money.ic.chain.merchant_balance(uuid_to_bytes32(account.merchant_id)) == usdt(60)
        async with money.db.unit_of_work() as session:
            assert await service.spendable(session, money.ctx, account.merchant_id) == usdt(60)
            page, total = await money_ledger(session, money, account.merchant_id)
        assert [e.kind for e in page] == ["WITHDRAWAL", "PAYMENT"] and total == 2
        assert await events_for(money, wid) == ["withdrawal.requested", "withdrawal.approved",
                                                 "withdrawal.submitted", "withdrawal.completed"]
        await money.ic.assert_db_equals_chain(money.db)

    async def test_idempotency_key_returns_the_first_withdrawal(self, money: Money) -> None:
        account = await money.merchant(usdt(100))
        first = await request(money, account.merchant_id, usdt(20), key="k-1")
        assert await request(money, account.merchant_id, usdt(20), key="k-1") == first

    async def test_more_than_available_minus_reserved_is_refused(self, money: Money) -> None:
        account = await money.merchant(usdt(100))
        await request(money, account.merchant_id, usdt(70))
        with pytest.raises(InsufficientBalance):
            await request(money, account.merchant_id, usdt(31))

    async def test_frozen_and_unapproved_merchants_cannot_withdraw(self, money: Money) -> None:
        frozen = await money.merchant(usdt(100), status="FROZEN")
        with pytest.raises(MerchantNotAllowed):
            await request(money, frozen.merchant_id, usdt(20))
        pending = await money.merchant(usdt(100), kyc="INSTANT_ACCESS")
        with pytest.raises(MerchantNotAllowed):
            await request(money, pending.merchant_id, usdt(20))

    async def test_without_an_active_payout_address_nothing_can_be_withdrawn(self, money: Money) -> None:
        account = await money.merchant(usdt(100), payout=None)
        with pytest.raises(PayoutAddressNotSet):
            await request(money, account.merchant_id, usdt(20))

    async def test_above_the_threshold_it_waits_for_an_admin(self, money: Money) -> None:
        account = await money.merchant(usdt(3000))
        wid = await request(money, account.merchant_id, usdt(2000))
        await money.run()
        assert (await money.withdrawal(wid)).status == "REQUESTED"
        async with money.db.unit_of_work() as session:
            await service.decide_withdrawal(session, wid, approve=True, admin_id=uuid.uuid4())
        await money.run()
        assert (await money.withdrawal(wid)).status == "COMPLETED"


async def money_ledger(session, money: Money, merchant_id: uuid.UUID):  # type: ignore[no-untyped-def]
    from node.settlement import repository

    return await repository.ledger_page(session, money.ctx.chain_id, uuid_to_bytes32(merchant_id), offset=0, limit=10)


class TestConcurrency:
    async def test_twenty_concurrent_requests_never_overdraw_and_the_chain_confirms_exactly_those(
        self, money: Money,
    ) -> None:
        account = await money.merchant(usdt(100))
        results = await asyncio.gather(*[request(money, account.merchant_id, usdt(15)) for _ in range(20)],
                                       return_exceptions=True)
        accepted = [r for r in results if isinstance(r, uuid.UUID)]
        refused = [r for r in results if isinstance(r, InsufficientBalance)]
        assert len(accepted) == 6 and len(refused) == 14, results
        await money.run()
        for wid in accepted:
            assert (await money.withdrawal(wid)).status == "COMPLETED"
        assert money.ic.chain.merchant_balance(uuid_to_bytes32(account.merchant_id)) == usdt(10)
        logs = money.ic.chain.rpc.request("eth_getLogs", [{"fromBlock": "0x0", "address": money.ic.deployment.gateway,
                                                           "topics": [_topic("Withdrawal")]}])
        assert len(logs) == 6
        await money.ic.assert_db_equals_chain(money.db)


def _topic(name: str) -> str:
    from chain.events import EVENT_TYPES

    return EVENT_TYPES[name].TOPIC0


class TestFailures:
    async def test_a_revert_fails_the_withdrawal_and_releases_the_reservation(self, money: Money) -> None:
        account = await money.merchant(usdt(100))
        chain = money.ic.chain
        wid = await request(money, account.merchant_id, usdt(50))
        chain.transact(OPERATOR, "OpenPayGateway", "pause")
        await money.run()
        w = await money.withdrawal(wid)
        assert w.status == "FAILED" and "EnforcedPause" in (w.reason or "")
        async with money.db.unit_of_work() as session:
            assert await service.spendable(session, money.ctx, account.merchant_id) == usdt(100)
        assert "withdrawal.failed" in await events_for(money, wid)

    async def test_a_dropped_transaction_fails_and_its_nonce_is_cancelled(self, money: Money) -> None:
        account = await money.merchant(usdt(100))
        rpc = money.ic.chain.rpc
        wid = await request(money, account.merchant_id, usdt(50))
        rpc.request("evm_setAutomine", [False])
        money.sender.settings = money.sender.settings.model_copy(update={"tx_receipt_timeout_s": 0.5})
        money.sender._senders.clear()
        try:
            await money.sender.run_once()  # broadcast, not mined in time: left to reconciliation
            async with money.db.unit_of_work() as session:
                send = (await session.execute(select(ChainSend).where(ChainSend.object_id == wid))).scalar_one()
            assert send.status == "SENDING" and send.tx_hashes
            for tx_hash in send.tx_hashes:
                rpc.request("anvil_dropTransaction", [tx_hash])
            task = asyncio.create_task(money.sender.run_once())
            await asyncio.sleep(0.5)
            rpc.request("evm_mine", [])
            await task
        finally:
            rpc.request("evm_setAutomine", [True])
        w = await money.withdrawal(wid)
        assert w.status == "FAILED" and "dropped" in (w.reason or "")
        await money.index()
        assert money.ic.chain.merchant_balance(uuid_to_bytes32(account.merchant_id)) == usdt(100)
        async with money.db.unit_of_work() as session:
            assert await service.spendable(session, money.ctx, account.merchant_id) == usdt(100)

    async def test_a_stuck_transaction_is_replaced_not_duplicated(self, money: Money) -> None:
        account = await money.merchant(usdt(100))
        rpc = money.ic.chain.rpc
        wid = await request(money, account.merchant_id, usdt(30))
        rpc.request("evm_setAutomine", [False])
        try:
            task = asyncio.create_task(money.sender.run_once())
            for _ in range(100):
                async with money.db.unit_of_work() as session:
                    send = (await session.execute(select(ChainSend).where(ChainSend.object_id == wid))
                            ).scalar_one_or_none()
                if send is not None and len(send.tx_hashes) >= 2:
                    break
                await asyncio.sleep(0.1)
            assert send is not None and len(send.tx_hashes) >= 2, "no replacement was sent"
            rpc.request("evm_mine", [])
            await asyncio.wait_for(task, 20)
        finally:
            rpc.request("evm_setAutomine", [True])
        await money.index()
        w = await money.withdrawal(wid)
        assert w.status == "COMPLETED" and w.tx_hash in send.tx_hashes[1:]
        assert money.ic.chain.merchant_balance(uuid_to_bytes32(account.merchant_id)) == usdt(70)
        assert UNIT
