"""Money after creation, against real anvil + PostgreSQL + the in-process indexer: refunds sent
by the chain sender and completed by the indexed ``Refunded`` event, late payments (accept or
refund), expiry and sweeper jobs, reorgs, the oracle poster."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update

from node.bus import OutboxMessage
from node.exchange.oracle_poster import post_if_due
from node.payments import onchain, tasks
from node.payments.models import Payment, Refund
from node.payments.service import intent_of
from node.settlement import repository as balances
from node.settlement.tasks import ChainSender
from tests.api.sdk_client import SdkClient
from tests.fixtures.accounts import AdminAccount, MerchantAccount
from tests.fixtures.contracts import KEYS, PAYERS, UNIT
from tests.fixtures.payments import PaymentNode


def sdk(node: PaymentNode, account: MerchantAccount, mode: str = "test") -> SdkClient:
    return SdkClient(node.http, account.sdk_credential(mode))  # type: ignore[arg-type]


async def row(node: PaymentNode, payment_id: str, *, status: str | None = None) -> Payment:
    """The stored payment; with ``status``, waits up to 2 s for it: the request's transaction
    commits after the response is sent (FastAPI runs the Session dependency's exit then)."""
    for _ in range(100):
        async with node.resources.db.unit_of_work() as session:
            payment = await session.get(Payment, uuid.UUID(payment_id))
        if payment is not None and (status is None or payment.status == status):
            return payment
        await asyncio.sleep(0.02)
    assert payment is not None
    return payment


async def eventually(check: Any, timeout: float = 2.0) -> None:
    """Waits for ``await check()`` to be true (see ``row`` on when a request commits)."""
    for _ in range(int(timeout / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def event_types(node: PaymentNode, key: str) -> list[str]:
    async with node.resources.db.unit_of_work() as session:
        return list((await session.execute(select(OutboxMessage.type).where(OutboxMessage.key == key)
                                           .order_by(OutboxMessage.id))).scalars())


async def refund_rows(node: PaymentNode, payment_id: str) -> list[Refund]:
    async with node.resources.db.unit_of_work() as session:
        return list((await session.execute(select(Refund).where(Refund.payment_id == uuid.UUID(payment_id))
                                           .order_by(Refund.created_at))).scalars())


async def wallet_pay(node: PaymentNode, payment_id: str, payer: str) -> dict[str, Any]:
    payment = await row(node, payment_id)
    node.chain.chain.fund(payer, int(payment.amount_units))
    return node.chain.chain.pay(payer, intent_of(payment), bytes(payment.signature))


async def expire_now(node: PaymentNode, payment_id: str) -> None:
    """Moves the deadline into the past (creation refuses one), then runs the expiry job."""
    async with node.resources.db.unit_of_work() as session:
        await session.execute(update(Payment).where(Payment.id == uuid.UUID(payment_id))
                              .values(expire_at=datetime.now(UTC) - timedelta(seconds=5)))
    await tasks.expire_payments(node.resources.db, node.settings)


async def merchant_balance_db(node: PaymentNode, payment: Payment) -> int:
    async with node.resources.db.unit_of_work() as session:
        return await balances.available(session, node.chain.chain_id, bytes(payment.merchant_key),
                                        payment.token.lower())


class TestRefunds:
    async def test_partial_then_full_refund_on_chain(self, pay_node: PaymentNode, merchant_account: MerchantAccount,
                                                     chain_sender: ChainSender) -> None:
        client = sdk(pay_node, merchant_account)
        data = (await client.create_payment(amount="10")).json()["data"]
        payer = PAYERS[3]
        await wallet_pay(pay_node, data["id"], payer)
        await pay_node.sync()
        assert (await row(pay_node, data["id"])).status == "paid"
        path = f"/v1/payments/{data['id']}/refunds"

        # over what was paid, over the balance (9.8 after fees), not a number: 4xx, nothing written
        for body, status, code in (({"amount": "10.5"}, 400, "VALIDATION_ERROR"),
                                   ({"amount": "9.9"}, 409, "INSUFFICIENT_BALANCE"),
                                   ({"amount": "-1"}, 400, "VALIDATION_ERROR"),
                                   ({"amount": "x"}, 400, "VALIDATION_ERROR"),
                                   ({"amount": "1.0000000000000000001"}, 400, "VALIDATION_ERROR"),  # 19th decimal
                                   ({"amount": "1", "toAddress": "0x12"}, 400, "VALIDATION_ERROR")):
            reply = await client.request("POST", path, body)
            assert reply.status_code == status and reply.json()["error"]["code"] == code, (body, reply.text)
        assert await refund_rows(pay_node, data["id"]) == []

        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = await client.request("POST", path, {"amount": "4", "reason": "broken cup"}, headers=key)
        again = await client.request("POST", path, {"amount": "4", "reason": "broken cup"}, headers=key)
        other = await client.request("POST", path, {"amount": "5"}, headers=key)
        assert first.status_code == 201, first.text
        assert again.json()["data"]["id"] == first.json()["data"]["id"]
        assert other.status_code == 409 and other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
        refund = first.json()["data"]
        assert refund["status"] == "APPROVED" and refund["toAddress"].lower() == payer.lower()
        async def one_refund() -> bool:
            return len(await refund_rows(pay_node, data["id"])) == 1
        await eventually(one_refund)
        # in flight counts against what is left: 6 refundable, 5.8 balance
        assert (await client.request("POST", path, {"amount": "6"})).json()["error"]["code"] == (
            "INSUFFICIENT_BALANCE")

        payer_before = pay_node.chain.chain.token_balance(payer)
        await chain_sender.run_once()
        submitted = (await refund_rows(pay_node, data["id"]))[0]
        assert submitted.status == "SUBMITTED" and submitted.tx_hash
        assert (await row(pay_node, data["id"])).status == "paid"  # not before the event is indexed
        await pay_node.sync()
        done = (await refund_rows(pay_node, data["id"]))[0]
        assert done.status == "COMPLETED" and done.completed_at is not None
        assert pay_node.chain.chain.token_balance(payer) == payer_before + 4 * UNIT
        payment = await row(pay_node, data["id"])
        assert payment.status == "partially_refunded" and payment.refunded_units == 4 * UNIT
        wire = (await client.get_payment(data["id"])).json()["data"]
        assert wire["status"] == "PAID" and wire["refundedUsdt"] == "4"
        assert await merchant_balance_db(pay_node, payment) == pay_node.chain.chain.merchant_balance(
            bytes(payment.merchant_key)) == 58 * UNIT // 10

        # more money for the merchant, then the rest (no amount = all that is left) completes it
        more = (await client.create_payment(amount="10")).json()["data"]
        await wallet_pay(pay_node, more["id"], PAYERS[4])
        await pay_node.sync()
        rest = await client.request("POST", path, {})
        assert rest.status_code == 201 and rest.json()["data"]["amountUsdt"] == "6"

        async def two_refunds() -> bool:
            return len(await refund_rows(pay_node, data["id"])) == 2
        await eventually(two_refunds)
        assert (await client.request("POST", path, {"amount": "0.1"})).json()["error"]["code"] == (
            "REFUND_NOT_ALLOWED")
        await chain_sender.run_once()
        await pay_node.sync()
        payment = await row(pay_node, data["id"])
        assert payment.status == "refunded" and payment.refunded_units == 10 * UNIT
        types = await event_types(pay_node, data["id"])
        assert types.count("refund.completed") == 2 and types[-1] == "payment.refunded"
        assert "payment.partially_refunded" in types

    async def test_unpaid_payment_cannot_be_refunded(self, pay_node: PaymentNode,
                                                     merchant_account: MerchantAccount) -> None:
        client = sdk(pay_node, merchant_account)
        data = (await client.create_payment(amount="3")).json()["data"]
        reply = await client.request("POST", f"/v1/payments/{data['id']}/refunds", {"amount": "1"})
        assert reply.status_code == 409 and reply.json()["error"]["code"] == "REFUND_NOT_ALLOWED"
        assert await refund_rows(pay_node, data["id"]) == []


class TestExpiryLateAndSweeps:
    async def test_expiry_job_expires_unpaid_and_fails_underpaid(self, pay_node: PaymentNode,
                                                                 merchant_account: MerchantAccount) -> None:
        client = sdk(pay_node, merchant_account)
        unpaid = (await client.create_payment(amount="2")).json()["data"]
        under = (await client.create_payment(amount="2")).json()["data"]
        pay_node.chain.chain.fund(PAYERS[5], UNIT)
        pay_node.chain.chain.transact(PAYERS[5], "MockUSDT", "transfer", under["depositAddress"], UNIT)
        await pay_node.sync()
        await expire_now(pay_node, unpaid["id"])
        await expire_now(pay_node, under["id"])
        assert (await row(pay_node, unpaid["id"])).status == "expired"
        assert (await row(pay_node, under["id"])).status == "failed"
        assert (await client.get_payment(unpaid["id"])).json()["data"]["status"] == "EXPIRED"
        assert (await client.get_payment(under["id"])).json()["data"]["status"] == "FAILED"
        assert (await event_types(pay_node, unpaid["id"]))[-1] == "payment.expired"
        assert (await event_types(pay_node, under["id"]))[-1] == "payment.failed"

    async def test_late_money_is_held_then_accepted_or_refunded(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, operator: onchain.Operator,
        chain_sender: ChainSender, platform_admin: AdminAccount,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        chain = pay_node.chain.chain
        accept = (await client.create_payment(amount="5")).json()["data"]
        refund = (await client.create_payment(amount="5")).json()["data"]
        for data in (accept, refund):
            await expire_now(pay_node, data["id"])
        chain.fund(PAYERS[6], 10 * UNIT)
        hashes = {data["id"]: chain.transact(PAYERS[6], "MockUSDT", "transfer", data["depositAddress"], 5 * UNIT)[
            "transactionHash"] for data in (accept, refund)}
        await pay_node.sync()
        for data in (accept, refund):
            payment = await row(pay_node, data["id"])
            assert payment.status == "late" and payment.late and payment.received_final == 5 * UNIT
            wire = (await client.get_payment(data["id"])).json()["data"]
            assert wire["status"] == "EXPIRED" and wire["late"] is True
            assert wire["txHash"] == "" and wire["lastTxHash"] == hashes[data["id"]]  # "" until paid
            assert wire["payer"] == PAYERS[6].lower()
            assert wire["receivedUsdt"] == "5" and Decimal(wire["amountLkr"]) == 5 * payment.rate
            assert wire["feeBreakdown"]["totalFeesUSDT"] == "0.1" and wire["feeBreakdown"]["netAmountUSDT"] == "4.9"
            assert (await event_types(pay_node, data["id"]))[-1] == "payment.late"

        accepted = await client.request("POST", f"/v1/payments/{accept['id']}/late/accept")
        assert accepted.status_code == 200 and accepted.json()["data"]["status"] == "PAID"
        assert accepted.json()["data"]["txHash"] == hashes[accept["id"]] and "paidAt" in accepted.json()["data"]
        assert (await row(pay_node, accept["id"], status="paid")).status == "paid"
        again = await client.request("POST", f"/v1/payments/{accept['id']}/late/accept")
        assert again.status_code == 409 and again.json()["error"]["code"] == "INVALID_TRANSITION"

        # a transfer: the refund needs an address; undecided late money is not swept (it is not the
        # merchant's balance), yet it covers its own refund: swept once the merchant decided
        path = f"/v1/payments/{refund['id']}/refunds"
        no_address = await client.request("POST", path, {})
        assert no_address.status_code == 400 and "toAddress" in no_address.json()["error"]["message"]
        await tasks.sweep_deposits(pay_node.resources.db, pay_node.settings, operator)
        await pay_node.sync()
        assert (await row(pay_node, refund["id"])).swept == 0
        made = await client.request("POST", path, {"toAddress": PAYERS[7]})
        assert made.status_code == 201 and made.json()["data"]["status"] == "PENDING_APPROVAL", made.text

        async def requested() -> bool:
            return len(await refund_rows(pay_node, refund["id"])) == 1
        await eventually(requested)
        async def decided() -> bool:
            return (await row(pay_node, refund["id"])).late_decision == "REFUND"
        await eventually(decided)
        assert (await client.request("POST", f"/v1/payments/{refund['id']}/late/accept")).status_code == 409
        # nor while the refund waits for an administrator: a rejection gives the decision back to the
        # merchant, and the money must then still be at the deposit address, not in its balance
        await tasks.sweep_deposits(pay_node.resources.db, pay_node.settings, operator)
        await pay_node.sync()
        assert (await row(pay_node, refund["id"])).swept == 0
        approved = await pay_node.http.post(f"/v1/admin/refunds/{made.json()['data']['id']}/approve",
                                            headers=platform_admin.auth_headers)
        assert approved.status_code == 200, approved.text

        async def sendable() -> bool:
            return (await refund_rows(pay_node, refund["id"]))[0].status == "APPROVED"
        await eventually(sendable)
        assert await chain_sender.run_once() == 0  # not before the late money is swept into the gateway
        await tasks.sweep_deposits(pay_node.resources.db, pay_node.settings, operator)
        await pay_node.sync()
        assert (await row(pay_node, refund["id"])).swept == 5 * UNIT
        await chain_sender.run_once()
        await pay_node.sync()
        assert (await row(pay_node, refund["id"])).status == "refunded"
        assert chain.token_balance(PAYERS[7]) >= 5 * UNIT
        # the payment was never paid: refunding its late money leaves it EXPIRED (a terminal status),
        # on the wire and in the announcement a plugin reads
        assert (await client.get_payment(refund["id"])).json()["data"]["status"] == "EXPIRED"
        async with pay_node.resources.db.unit_of_work() as session:
            announced = (await session.execute(select(OutboxMessage).where(
                OutboxMessage.key == refund["id"], OutboxMessage.type == "payment.refunded"))).scalar_one()
        assert announced.payload["status"] == "EXPIRED"

    async def test_sweeper_batches_final_deposits_and_balances_equal_the_contract(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, operator: onchain.Operator,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        chain = pay_node.chain.chain
        chain.fund(PAYERS[8], 100 * UNIT)
        ids = []
        for amount in ("1", "2", "3", "4", "5"):
            data = (await client.create_payment(amount=amount)).json()["data"]
            chain.transact(PAYERS[8], "MockUSDT", "transfer", data["depositAddress"], int(amount) * UNIT)
            ids.append(data["id"])
        await pay_node.sync()
        settings = pay_node.settings.model_copy(update={"sweep_batch_size": 2})
        swept = await tasks.sweep_deposits(pay_node.resources.db, settings, operator)
        assert swept >= 5  # other tests' final deposits may be swept too
        for pid in ids:
            payment = await row(pay_node, pid)
            assert payment.sweep_tx and payment.swept == 0  # recorded from the event, not the sender
        await pay_node.sync()
        for pid in ids:
            payment = await row(pay_node, pid)
            assert payment.swept == payment.received_final and payment.sweep_tx is None
        assert await tasks.sweep_deposits(pay_node.resources.db, settings, operator) == 0
        payment = await row(pay_node, ids[0])
        assert await merchant_balance_db(pay_node, payment) == chain.merchant_balance(bytes(payment.merchant_key))
        async with pay_node.resources.db.unit_of_work() as session:
            treasury = await balances.treasury_balances(session, pay_node.chain.chain_id)
        assert treasury.get(payment.token.lower(), 0) == chain.treasury()


class TestReorg:
    async def test_a_reorg_takes_the_payment_back_and_announces_reverted(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        chain = pay_node.chain.chain
        data = (await client.create_payment(amount="6")).json()["data"]
        async with pay_node.at_depth(5):
            await pay_node.sync()
            snapshot = chain.rpc.request("evm_snapshot")
            chain.fund(PAYERS[9], 6 * UNIT)
            chain.transact(PAYERS[9], "MockUSDT", "transfer", data["depositAddress"], 6 * UNIT)
            await pay_node.sync()
            assert (await row(pay_node, data["id"])).status == "pending"
            assert (await client.get_payment(data["id"])).json()["data"]["status"] == "USER_REVIEW"
            chain.rpc.request("evm_revert", [snapshot])
            for _ in range(4):
                chain.mine()
            await pay_node.sync()
            payment = await row(pay_node, data["id"])
            assert payment.status == "initiated" and payment.received_seen == 0 and payment.tx_hash is None
            types = await event_types(pay_node, data["id"])
            assert types == ["payment.initiated", "payment.pending", "payment.reverted"]
            for _ in range(6):
                chain.mine()
            await pay_node.sync()
            assert (await row(pay_node, data["id"])).status == "initiated"


class TestOracle:
    async def test_posts_on_deviation_or_heartbeat_and_the_chain_has_the_rate(self, pay_node: PaymentNode) -> None:
        from chain.oracle import RateOracle

        operator = onchain.operator(pay_node.settings, key=KEYS[3])  # REPORTER_ROLE (the scheduler's reporter)

        dep = onchain.deployment(pay_node.settings)
        oracle = RateOracle(operator.rpc, dep.oracle, onchain.artifacts()["OpenPayRateOracle"])
        db = pay_node.resources.db
        try:
            chain = pay_node.chain.chain
            await pay_node.set_rate("310")
            chain.mine(1)  # observations are whole seconds, clamped to the chain's time
            await post_if_due(db, pay_node.settings, operator)  # posts unless a round of 310 exists
            last = await oracle.latest_round()
            assert last is not None and last.rate == Decimal("310")
            await pay_node.set_rate("310.9")  # 0.29% < 0.5%
            chain.mine(1)
            assert not await post_if_due(db, pay_node.settings, operator)
            await asyncio.sleep(1.0)
            await pay_node.set_rate("312.5")  # 0.8%
            chain.mine(1)
            assert await post_if_due(db, pay_node.settings, operator)
            last = await oracle.latest_round()
            assert last is not None and last.rate == Decimal("312.5")
            await asyncio.sleep(1.0)
            await pay_node.set_rate("312.5")  # a new observation, no move
            chain.mine(1)
            assert not await post_if_due(db, pay_node.settings, operator)
            beat = pay_node.settings.model_copy(update={"oracle_heartbeat_s": 0})
            assert await post_if_due(db, beat, operator)  # but the heartbeat passed
            again = await oracle.latest_round()
            assert again is not None and again.round_id == last.round_id + 1 and again.rate == Decimal("312.5")
            async with db.unit_of_work() as session:
                from node.exchange.rate_models import OraclePost

                posts = (await session.execute(select(func.count()).select_from(OraclePost).where(
                    OraclePost.chain_id == dep.chain_id))).scalar_one()
            assert posts >= 2
        finally:
            await operator.aclose()
            await pay_node.set_rate("300")

