"""Payment states from the chain, end to end on anvil (real app, real indexer): late money decided by
the including block's time, late money on a failed payment (accept, reorg back to failed), reorgs
announced as ``payment.reverted``, block number and confirmations on the wire, late deposits left
unswept until the merchant decides."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from node.bus import OutboxMessage
from node.payments import onchain, states, tasks
from node.payments.models import Payment
from tests.api.test_payments_lifecycle import event_types, expire_now, row, sdk, wallet_pay
from tests.fixtures.accounts import MerchantAccount
from tests.fixtures.contracts import PAYERS, UNIT
from tests.fixtures.payments import PaymentNode


async def _set(node: PaymentNode, payment_id: str, **values: object) -> None:
    async with node.resources.db.unit_of_work() as session:
        await session.execute(update(Payment).where(Payment.id == uuid.UUID(payment_id)).values(**values))


async def last_event(node: PaymentNode, payment_id: str) -> tuple[str, dict[str, Any]]:
    async with node.resources.db.unit_of_work() as session:
        message = (await session.execute(select(OutboxMessage).where(OutboxMessage.key == payment_id)
                                         .order_by(OutboxMessage.id.desc()).limit(1))).scalar_one()
        return message.type, message.payload


def block_time(node: PaymentNode, receipt: dict[str, Any]) -> datetime:
    block = node.chain.chain.rpc.request("eth_getBlockByNumber", [receipt["blockNumber"], False])
    return datetime.fromtimestamp(int(block["timestamp"], 16), UTC)


def transfer(node: PaymentNode, payer: str, data: dict[str, Any], units: int) -> dict[str, Any]:
    node.chain.chain.fund(payer, units)
    return node.chain.chain.transact(payer, "MockUSDT", "transfer", data["depositAddress"], units)


class TestLateByTheBlock:
    async def test_money_in_a_block_before_the_deadline_is_paid_though_the_expiry_job_ran_first(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        """An indexer that lags: the payment expired by the job before its transfer was indexed."""
        client = sdk(pay_node, merchant_account)
        data = (await client.create_payment(amount="4")).json()["data"]
        await row(pay_node, data["id"])
        receipt = transfer(pay_node, PAYERS[2], data, 4 * UNIT)
        deadline = block_time(pay_node, receipt)  # the transfer's block is the last second in time
        await _set(pay_node, data["id"], expire_at=deadline)
        while datetime.now(UTC) <= deadline:
            await asyncio.sleep(0.05)
        await tasks.expire_payments(pay_node.resources.db, pay_node.settings)
        assert (await row(pay_node, data["id"])).status == "expired"
        await pay_node.sync()
        payment = await row(pay_node, data["id"])
        assert payment.status == "paid" and not payment.late
        wire = (await client.get_payment(data["id"])).json()["data"]
        assert wire["status"] == "PAID" and wire["txHash"] == receipt["transactionHash"]
        assert (await event_types(pay_node, data["id"]))[-1] == "payment.paid"

    async def test_money_in_a_block_after_the_deadline_is_late_though_the_expiry_job_did_not_run(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        """A stalled scheduler: the payment is still initiated when its late transfer is indexed."""
        client = sdk(pay_node, merchant_account)
        await pay_node.set_rate("300")
        data = (await client.create_payment(amount="4")).json()["data"]
        await row(pay_node, data["id"])
        await _set(pay_node, data["id"], expire_at=datetime.now(UTC) - timedelta(seconds=5))
        receipt = transfer(pay_node, PAYERS[2], data, 4 * UNIT)
        await pay_node.sync()
        payment = await row(pay_node, data["id"])
        assert payment.status == "late" and payment.late and payment.late_from == "expired"
        assert payment.paid_at is None
        wire = (await client.get_payment(data["id"])).json()["data"]
        assert wire["status"] == "EXPIRED" and wire["late"] is True and wire["txHash"] == ""
        assert wire["lastTxHash"] == receipt["transactionHash"]
        assert wire["receivedUsdt"] == "4" and wire["amountLkr"] == "1200" and "paidAt" not in wire
        assert wire["feeBreakdown"]["totalFeesUSDT"] == "0.08" and wire["feeBreakdown"]["netAmountUSDT"] == "3.92"
        assert (await event_types(pay_node, data["id"]))[-1] == "payment.late"

    async def test_money_the_gateway_took_is_in_time_though_the_payment_closed_before_its_deadline(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        """The simulated customer (and the expiry job's view) can close a payment before the intent's
        on-chain deadline; ``pay`` reverts only after that deadline, so money it took is a payment,
        already split to the merchant on chain, never late money held for a decision."""
        client = sdk(pay_node, merchant_account)
        data = (await client.create_payment(amount="4")).json()["data"]
        await expire_now(pay_node, data["id"])
        assert (await row(pay_node, data["id"])).status == "expired"
        await wallet_pay(pay_node, data["id"], PAYERS[7])
        await pay_node.sync()
        payment = await row(pay_node, data["id"])
        assert payment.status == "paid" and not payment.late and payment.late_from is None
        assert (await event_types(pay_node, data["id"]))[-1] == "payment.paid"

    async def test_a_backfilled_block_is_judged_by_its_own_time(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        """An indexer far behind backfills final blocks and stores only each range's last header,
        which is past both deadlines here: each transfer's block time comes from the node."""
        client = sdk(pay_node, merchant_account)
        chain = pay_node.chain.chain
        on_time, late = [(await client.create_payment(amount="4")).json()["data"] for _ in range(2)]
        for data in (on_time, late):
            await row(pay_node, data["id"])
        first = transfer(pay_node, PAYERS[6], on_time, 4 * UNIT)
        second = transfer(pay_node, PAYERS[6], late, 4 * UNIT)
        first_at, second_at = block_time(pay_node, first), block_time(pay_node, second)
        while datetime.now(UTC) < second_at + timedelta(seconds=1.1):
            await asyncio.sleep(0.05)
        for _ in range(pay_node.follower.live_blocks + 20):  # behind by more than the tip's window
            chain.mine()
        assert chain.now() > second_at.timestamp()
        await _set(pay_node, on_time["id"], expire_at=first_at)  # its block was the last second in time
        await _set(pay_node, late["id"], expire_at=second_at - timedelta(seconds=1))  # one second too late
        async with pay_node.resources.db.unit_of_work() as session:
            await states.expire_due(session, pay_node.settings, payment_ids=[uuid.UUID(on_time["id"])])
        assert (await row(pay_node, on_time["id"])).status == "expired"
        assert (await row(pay_node, late["id"])).status == "initiated"  # the scheduler has not run for it
        await pay_node.sync()
        assert (await row(pay_node, on_time["id"])).status == "paid"
        payment = await row(pay_node, late["id"])
        assert payment.status == "late" and payment.late_from == "expired"


class TestLateMoneyOnAFailedPayment:
    async def test_accepted_or_reorged_back_to_failed(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, operator: onchain.Operator,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        chain = pay_node.chain.chain
        await pay_node.set_rate("300")
        data = (await client.create_payment(amount="5")).json()["data"]
        await row(pay_node, data["id"])
        transfer(pay_node, PAYERS[3], data, 2 * UNIT)
        await pay_node.sync()
        await expire_now(pay_node, data["id"])
        assert (await row(pay_node, data["id"])).status == "failed"

        async with pay_node.at_depth(5):
            await pay_node.sync()
            snapshot = chain.rpc.request("evm_snapshot")
            transfer(pay_node, PAYERS[3], data, 3 * UNIT)
            await pay_node.sync()
            payment = await row(pay_node, data["id"])
            assert payment.status == "late" and payment.late and payment.late_from == "failed"
            wire = (await client.get_payment(data["id"])).json()["data"]
            assert wire["status"] == "FAILED" and wire["late"] is True  # not EXPIRED: it had failed
            assert (await event_types(pay_node, data["id"]))[-1] == "payment.late"

            chain.rpc.request("evm_revert", [snapshot])
            for _ in range(4):
                chain.mine()
            await pay_node.sync()
            payment = await row(pay_node, data["id"])
            assert payment.status == "failed" and not payment.late and payment.received_seen == 2 * UNIT
            kind, payload = await last_event(pay_node, data["id"])
            assert kind == "payment.reverted"
            assert payload["state"] == "failed" and payload["status"] == "FAILED" and payload["revertedFrom"] == "late"
            for _ in range(6):
                chain.mine()
            await pay_node.sync()

        # the rest again, for good: late, held (not swept), accepted -> paid, then swept
        receipt = transfer(pay_node, PAYERS[3], data, 3 * UNIT)
        await pay_node.sync()
        assert (await row(pay_node, data["id"])).status == "late"
        await tasks.sweep_deposits(pay_node.resources.db, pay_node.settings, operator)
        await pay_node.sync()
        assert (await row(pay_node, data["id"])).swept == 0  # undecided late money is not the merchant's yet
        accepted = await client.request("POST", f"/v1/payments/{data['id']}/late/accept")
        assert accepted.status_code == 200, accepted.text
        wire = accepted.json()["data"]
        assert wire["status"] == "PAID" and wire["txHash"] == receipt["transactionHash"]
        assert wire["receivedUsdt"] == "5" and wire["amountLkr"] == "1500" and wire["lateDecision"] == "ACCEPTED"
        assert wire["feeBreakdown"]["totalFeesUSDT"] == "0.1" and wire["feeBreakdown"]["netAmountUSDT"] == "4.9"
        paid = await row(pay_node, data["id"], status="paid")
        assert paid.status == "paid" and paid.late_from is None
        await tasks.sweep_deposits(pay_node.resources.db, pay_node.settings, operator)
        await pay_node.sync()
        assert (await row(pay_node, data["id"])).swept == 5 * UNIT


class TestReorgs:
    async def test_a_reorged_top_up_returns_to_underpaid_and_announces_reverted(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        chain = pay_node.chain.chain
        data = (await client.create_payment(amount="5")).json()["data"]
        await row(pay_node, data["id"])
        async with pay_node.at_depth(3):
            first = transfer(pay_node, PAYERS[4], data, 2 * UNIT)
            for _ in range(4):
                chain.mine()
            await pay_node.sync()
            assert (await row(pay_node, data["id"])).status == "underpaid"
            snapshot = chain.rpc.request("evm_snapshot")
            transfer(pay_node, PAYERS[4], data, 3 * UNIT)
            await pay_node.sync()
            assert (await row(pay_node, data["id"])).status == "pending"
            chain.rpc.request("evm_revert", [snapshot])
            for _ in range(3):
                chain.mine()
            await pay_node.sync()
            payment = await row(pay_node, data["id"])
            assert payment.status == "underpaid" and payment.tx_hash == first["transactionHash"]
            kind, payload = await last_event(pay_node, data["id"])
            assert kind == "payment.reverted" and payload["state"] == "underpaid"
            assert payload["revertedFrom"] == "pending" and payload["lastTxHash"] == first["transactionHash"]
            types = await event_types(pay_node, data["id"])
            assert types.count("payment.underpaid") == 1  # not announced again


class TestBlockAndConfirmations:
    async def test_block_number_and_confirmations_follow_the_indexed_head(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        chain = pay_node.chain.chain
        created = (await client.create_payment(amount="3")).json()["data"]
        assert "blockNumber" not in created and "confirmations" not in created
        receipt = transfer(pay_node, PAYERS[5], created, 3 * UNIT)
        block = int(receipt["blockNumber"], 16)
        await pay_node.sync()
        _, payload = await last_event(pay_node, created["id"])
        assert payload["blockNumber"] == block and payload["confirmations"] >= 1
        await asyncio.sleep(1.1)  # the API's cached head
        wire = (await client.get_payment(created["id"])).json()["data"]
        assert wire["blockNumber"] == block and wire["confirmations"] == 1
        assert wire["payer"] == PAYERS[5].lower() and wire["txHash"] == receipt["transactionHash"]
        for _ in range(3):
            chain.mine()
        await pay_node.sync()
        await asyncio.sleep(1.1)
        for path in (f"/v1/sdk/payments/{created['id']}", f"/v1/sdk/payments?search={created['paymentNo']}"):
            reply = (await client.request("GET", path)).json()["data"]
            got = reply[0] if isinstance(reply, list) else reply
            assert got["blockNumber"] == block and got["confirmations"] == 4, path


class TestTopUps:
    async def test_more_money_after_paid_is_announced_as_overpaid_not_paid_again(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        data = (await sdk(pay_node, merchant_account).create_payment(amount="4")).json()["data"]
        await row(pay_node, data["id"])
        transfer(pay_node, PAYERS[3], data, 4 * UNIT)
        await pay_node.sync()
        transfer(pay_node, PAYERS[3], data, 1 * UNIT)
        await pay_node.sync()
        assert (await row(pay_node, data["id"])).status == "overpaid"
        kind, payload = await last_event(pay_node, data["id"])
        assert kind == "payment.overpaid" and payload["status"] == "PAID" and payload["receivedUsdt"] == "5"
        assert (await event_types(pay_node, data["id"])).count("payment.paid") == 1
