"""Refunds against the real node, anvil and the in-process indexer: who may send a merchant's money
where (payer's address at once, another address or above the threshold after an administrator's
approval, never another address from an API key), exactly-once sending through the chain sender
(a timeout or a crash never sends twice), idempotency, and bad input."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from chain.artifacts import Artifacts
from node.admin import platform
from node.admin.models import AuditLog
from node.auth.context import RequestMeta
from node.bus import OutboxMessage
from node.money import format_units, to_base_units
from node.payments import tasks
from node.settlement.models import ChainSend
from node.settlement.sender import SendOutcome
from node.settlement.tasks import ChainSender
from tests.api.test_payments_lifecycle import event_types, eventually, expire_now, refund_rows, row, sdk, wallet_pay
from tests.fixtures.accounts import AdminAccount, MerchantAccount, make_admin, make_merchant
from tests.fixtures.contracts import PAYERS, UNIT
from tests.fixtures.payments import PaymentNode

ELSEWHERE = "0x00000000000000000000000000000000000bEEf1"


class DiesBeforeApplying(ChainSender):
    """A chain sender whose process dies once it has learnt a send's outcome, before it applies it."""

    async def _apply(self, send_id: uuid.UUID, outcome: SendOutcome) -> None:
        if outcome.status != "PENDING":
            raise RuntimeError("the process dies here")


async def admin_approves(node: PaymentNode, admin: AdminAccount, payment_id: str, refund_id: str) -> None:
    """The refund waits for review; an administrator approves it; it is APPROVED."""
    await refund_status(node, payment_id, "PENDING_APPROVAL")
    approved = await node.http.post(f"/v1/admin/refunds/{refund_id}/approve", headers=admin.auth_headers)
    assert approved.status_code == 200, approved.text
    await refund_status(node, payment_id, "APPROVED")


async def paid(node: PaymentNode, account: MerchantAccount, payer: str, amount: str = "10") -> dict[str, Any]:
    """A payment paid with the gateway's ``pay`` from ``payer`` and indexed."""
    data: dict[str, Any] = (await sdk(node, account).create_payment(amount=amount)).json()["data"]
    await wallet_pay(node, data["id"], payer)
    await node.sync()
    assert (await row(node, data["id"])).status == "paid"
    return data


async def portal(node: PaymentNode, account: MerchantAccount, path: str, body: Any = None,
                 headers: dict[str, str] | None = None) -> httpx.Response:
    return await node.http.post(path, json=body, headers={**account.auth_headers, **(headers or {})})


async def balance(node: PaymentNode, account: MerchantAccount) -> dict[str, Any]:
    answer = await node.http.get("/v1/settlements/balance", headers=account.auth_headers)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


async def refund_status(node: PaymentNode, payment_id: str, status: str, index: int = 0) -> None:
    """Waits for the request's commit (it lands after the response is sent)."""
    async def reached() -> bool:
        rows = await refund_rows(node, payment_id)
        return len(rows) > index and rows[index].status == status
    await eventually(reached)


async def refund_sends(node: PaymentNode, refund_id: str) -> list[ChainSend]:
    async with node.resources.db.unit_of_work() as session:
        return list((await session.execute(select(ChainSend).where(
            ChainSend.purpose == "refund", ChainSend.object_id == uuid.UUID(refund_id)))).scalars())


async def refund_events(node: PaymentNode, payment_id: str) -> list[str]:
    return [t for t in await event_types(node, payment_id) if t.startswith("refund.")]


@pytest_asyncio.fixture
async def admin(resources: Any) -> AdminAccount:
    return await make_admin(resources, "ADMIN")


@pytest_asyncio.fixture
async def threshold(pay_node: PaymentNode, platform_admin: AdminAccount) -> AsyncIterator[None]:
    """``limits.refundApprovalThresholdUsdt`` = 2 USDT for the test (restored after)."""
    db = pay_node.resources.db
    async with db.unit_of_work() as session:
        before = (await platform.get_settings(session))["limits"]
        await platform.put_setting(session, "limits", {**before, "refundApprovalThresholdUsdt": "2"},
                                   admin_id=platform_admin.admin_id, meta=RequestMeta.system())
    yield
    async with db.unit_of_work() as session:
        await platform.put_setting(session, "limits", before, admin_id=platform_admin.admin_id,
                                   meta=RequestMeta.system())


class TestWhoDecides:
    async def test_an_api_key_refunds_only_to_the_payer(self, pay_node: PaymentNode, merchant_account: MerchantAccount,
                                                        chain_sender: ChainSender) -> None:
        data = await paid(pay_node, merchant_account, PAYERS[0])
        client = sdk(pay_node, merchant_account)
        path = f"/v1/payments/{data['id']}/refunds"
        refused = await client.request("POST", path, {"amount": "1", "toAddress": ELSEWHERE})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "REFUND_ADDRESS_NOT_ALLOWED"
        assert await refund_rows(pay_node, data["id"]) == []
        # the payer's own address, in any letter case, is the default: approved at once
        made = await client.request("POST", path, {"amount": "1", "toAddress": PAYERS[0].upper().replace("0X", "0x")})
        assert made.status_code == 201, made.text
        assert made.json()["data"]["status"] == "APPROVED"
        assert made.json()["data"]["toAddress"].lower() == PAYERS[0].lower()
        await refund_status(pay_node, data["id"], "APPROVED")
        await chain_sender.run_once()
        await pay_node.sync()
        assert (await refund_rows(pay_node, data["id"]))[0].status == "COMPLETED"

    async def test_a_key_refunds_only_payments_of_its_own_mode(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        data = await paid(pay_node, merchant_account, PAYERS[0])  # made with the test key: a test payment
        assert (await row(pay_node, data["id"])).mode == "test"
        live = sdk(pay_node, merchant_account, "live")
        refused = await live.request("POST", f"/v1/payments/{data['id']}/refunds", {"amount": "1"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "REFUND_MODE_NOT_ALLOWED", refused.text
        await asyncio.sleep(0.2)  # a request's commit lands after its response
        assert await refund_rows(pay_node, data["id"]) == []

    async def test_another_address_from_the_portal_waits_for_an_admin_then_is_sent_and_completed(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, chain_sender: ChainSender,
        admin: AdminAccount, resources: Any,
    ) -> None:
        chain = pay_node.chain.chain
        data = await paid(pay_node, merchant_account, PAYERS[1])
        path = f"/v1/payments/{data['id']}/refunds"
        balance_before = await balance(pay_node, merchant_account)
        made = await portal(pay_node, merchant_account, path, {"amount": "3", "toAddress": ELSEWHERE,
                                                               "reason": "customer's new wallet"})
        assert made.status_code == 201, made.text
        refund = made.json()["data"]
        assert refund["status"] == "PENDING_APPROVAL" and "payer" in refund["reviewReason"]
        await refund_status(pay_node, data["id"], "PENDING_APPROVAL")
        await chain_sender.run_once()
        assert await refund_sends(pay_node, refund["id"]) == []
        assert (await refund_rows(pay_node, data["id"]))[0].status == "PENDING_APPROVAL"
        # the amount is held while it waits: 10 paid, 3 held, 7 left, for refunds and withdrawals alike
        over = await portal(pay_node, merchant_account, path, {"amount": "7.5"})
        assert over.status_code == 400 and "7" in over.json()["error"]["message"]
        held = await balance(pay_node, merchant_account)
        assert Decimal(held["reserved"]) - Decimal(balance_before["reserved"]) == 3
        assert Decimal(balance_before["withdrawable"]) - Decimal(held["withdrawable"]) == 3

        viewer = await make_admin(resources, "VIEWER")
        queue = await pay_node.http.get("/v1/admin/refunds?status=PENDING_APPROVAL&perPage=200",
                                        headers=viewer.auth_headers)
        assert queue.status_code == 200 and refund["id"] in [r["id"] for r in queue.json()["data"]]
        approve = f"/v1/admin/refunds/{refund['id']}/approve"
        assert (await pay_node.http.post(approve, headers=viewer.auth_headers)).status_code == 403
        approved = await pay_node.http.post(approve, headers=admin.auth_headers)
        assert approved.status_code == 200 and approved.json()["data"]["status"] == "APPROVED", approved.text
        again = await pay_node.http.post(approve, headers=admin.auth_headers)
        assert again.status_code == 409 and again.json()["error"]["code"] == "INVALID_TRANSITION"
        await refund_status(pay_node, data["id"], "APPROVED")

        before = chain.token_balance(ELSEWHERE)
        await chain_sender.run_once()
        assert (await refund_rows(pay_node, data["id"]))[0].status == "SUBMITTED"
        assert (await row(pay_node, data["id"])).status == "paid"  # not before the event is indexed
        await pay_node.sync()
        done = (await refund_rows(pay_node, data["id"]))[0]
        assert done.status == "COMPLETED" and done.tx_hash and done.decided_by == admin.admin_id
        assert chain.token_balance(ELSEWHERE) - before == 3 * UNIT
        payment = await row(pay_node, data["id"])
        assert payment.status == "partially_refunded" and payment.refunded_units == 3 * UNIT
        assert await refund_events(pay_node, data["id"]) == [
            "refund.requested", "refund.pending_approval", "refund.approved", "refund.submitted", "refund.completed"]
        async with pay_node.resources.db.unit_of_work() as session:
            audited = (await session.execute(select(AuditLog).where(AuditLog.resource_id == refund["id"]))
                       ).scalars().all()
        assert [(a.action, a.actor_id) for a in audited] == [("refund.approved", str(admin.admin_id))]

        # the rest, to the payer from the portal: at once, and the payment is refunded (the merchant's
        # balance was 9.8 after fees, minus 3: another payment covers the rest)
        await paid(pay_node, merchant_account, PAYERS[2])
        rest = await portal(pay_node, merchant_account, path, {})
        assert rest.status_code == 201 and rest.json()["data"]["status"] == "APPROVED", rest.text
        assert rest.json()["data"]["amountUsdt"] == "7"
        await refund_status(pay_node, data["id"], "APPROVED", index=1)
        await chain_sender.run_once()
        await pay_node.sync()
        payment = await row(pay_node, data["id"])
        assert payment.status == "refunded" and payment.refunded_units == 10 * UNIT

    async def test_above_the_threshold_it_waits_and_a_rejection_frees_the_amount(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, chain_sender: ChainSender,
        admin: AdminAccount, threshold: None,
    ) -> None:
        data = await paid(pay_node, merchant_account, PAYERS[3])
        client = sdk(pay_node, merchant_account)
        path = f"/v1/payments/{data['id']}/refunds"
        big = await client.request("POST", path, {"amount": "9"})
        assert big.status_code == 201 and big.json()["data"]["status"] == "PENDING_APPROVAL", big.text
        assert "threshold" in big.json()["data"]["reviewReason"]
        await refund_status(pay_node, data["id"], "PENDING_APPROVAL")
        held = await client.request("POST", path, {"amount": "1.5"})
        assert held.status_code == 400  # 10 paid, 9 held

        rejected = await pay_node.http.post(f"/v1/admin/refunds/{big.json()['data']['id']}/reject",
                                            json={"reason": "ask the customer first"}, headers=admin.auth_headers)
        assert rejected.status_code == 200, rejected.text
        assert rejected.json()["data"]["status"] == "REJECTED"
        assert rejected.json()["data"]["decisionNote"] == "ask the customer first"
        await refund_status(pay_node, data["id"], "REJECTED")
        await chain_sender.run_once()
        assert await refund_sends(pay_node, big.json()["data"]["id"]) == []
        # released: within the threshold to the payer goes at once, for more than was held before
        small = await client.request("POST", path, {"amount": "2"})
        assert small.status_code == 201 and small.json()["data"]["status"] == "APPROVED", small.text
        assert (await refund_events(pay_node, data["id"]))[:4] == [
            "refund.requested", "refund.pending_approval", "refund.rejected", "refund.requested"]
        await refund_status(pay_node, data["id"], "APPROVED", index=1)
        await chain_sender.run_once()
        await pay_node.sync()
        assert (await row(pay_node, data["id"])).refunded_units == 2 * UNIT

    async def test_a_transfer_paid_payment_needs_the_address_and_an_admin(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, chain_sender: ChainSender,
        admin: AdminAccount, operator: Any,
    ) -> None:
        chain = pay_node.chain.chain
        client = sdk(pay_node, merchant_account)
        data = (await client.create_payment(amount="4")).json()["data"]
        chain.fund(PAYERS[4], 4 * UNIT)  # as an exchange's hot wallet would: a plain transfer
        chain.transact(PAYERS[4], "MockUSDT", "transfer", data["depositAddress"], 4 * UNIT)
        await pay_node.sync()
        await tasks.sweep_deposits(pay_node.resources.db, pay_node.settings, operator)
        await pay_node.sync()
        path = f"/v1/payments/{data['id']}/refunds"
        missing = await client.request("POST", path, {"amount": "2"})
        assert missing.status_code == 400 and "toAddress" in missing.json()["error"]["message"]
        # the API key may name the address here (there is no payer address to use), an admin reviews it
        made = await client.request("POST", path, {"amount": "2", "toAddress": ELSEWHERE})
        assert made.status_code == 201 and made.json()["data"]["status"] == "PENDING_APPROVAL", made.text
        assert "transfer" in made.json()["data"]["reviewReason"]
        await admin_approves(pay_node, admin, data["id"], made.json()["data"]["id"])
        before = chain.token_balance(ELSEWHERE)
        await chain_sender.run_once()
        await pay_node.sync()
        assert (await refund_rows(pay_node, data["id"]))[0].status == "COMPLETED"
        assert chain.token_balance(ELSEWHERE) - before == 2 * UNIT
        assert (await row(pay_node, data["id"])).status == "partially_refunded"


RECEIPT_WAIT_S = 0.5


@contextlib.contextmanager
def blocks_on_demand(rpc: Any) -> Iterator[None]:
    """Transactions wait in anvil's mempool until the test mines a block (``evm_mine``)."""
    rpc.request("evm_setAutomine", [False])
    try:
        yield
    finally:
        rpc.request("evm_setAutomine", [True])


def impatient(sender: ChainSender) -> None:
    """The sender stops waiting for a receipt after ``RECEIPT_WAIT_S`` (its next run reconciles)."""
    sender.settings = sender.settings.model_copy(update={"tx_receipt_timeout_s": RECEIPT_WAIT_S})
    sender._senders.clear()


class TestExactlyOnce:
    async def _approved(self, node: PaymentNode, account: MerchantAccount, payer: str) -> tuple[str, str, int]:
        """A paid payment with an approved refund of 4 to ``payer``: (payment id, refund id, the payer's
        balance before the refund)."""
        data = await paid(node, account, payer)
        made = await sdk(node, account).request("POST", f"/v1/payments/{data['id']}/refunds", {"amount": "4"})
        assert made.status_code == 201 and made.json()["data"]["status"] == "APPROVED", made.text
        await refund_status(node, data["id"], "APPROVED")
        return data["id"], made.json()["data"]["id"], node.chain.chain.token_balance(payer)

    async def _refunded_once(self, node: PaymentNode, payment_id: str, refund_id: str, payer: str,
                             before: int) -> None:
        """One transaction was sent and mined, the refund is COMPLETED with it, the payer got 4 back."""
        await node.sync()
        [send] = await refund_sends(node, refund_id)
        assert send.status == "MINED" and len(send.tx_hashes) == 1 and send.mined_tx_hash == send.tx_hashes[0]
        refund = (await refund_rows(node, payment_id))[0]
        assert refund.status == "COMPLETED" and refund.tx_hash == send.mined_tx_hash
        assert node.chain.chain.token_balance(payer) - before == 4 * UNIT
        payment = await row(node, payment_id)
        assert payment.status == "partially_refunded" and payment.refunded_units == 4 * UNIT

    async def test_a_timeout_leaves_the_refund_in_flight_and_nothing_is_sent_twice(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, chain_sender: ChainSender,
    ) -> None:
        rpc = pay_node.chain.chain.rpc
        payment_id, refund_id, before = await self._approved(pay_node, merchant_account, PAYERS[5])
        impatient(chain_sender)
        with blocks_on_demand(rpc):
            await chain_sender.run_once()  # broadcast, not mined in time
            refund = (await refund_rows(pay_node, payment_id))[0]
            [send] = await refund_sends(pay_node, refund_id)
            assert refund.status == "SUBMITTED" and send.status == "SENDING" and len(send.tx_hashes) == 1
            # the held amount is not free: no second refund of it
            again = await sdk(pay_node, merchant_account).request("POST", f"/v1/payments/{payment_id}/refunds",
                                                                  {"amount": "7"})
            assert again.status_code == 400
            await chain_sender.run_once()  # reconciles: still pending, the same transaction again
            [send] = await refund_sends(pay_node, refund_id)
            assert send.status == "SENDING" and len(send.tx_hashes) == 1
            assert (await refund_rows(pay_node, payment_id))[0].status == "SUBMITTED"
            rpc.request("evm_mine", [])
        await chain_sender.run_once()
        await self._refunded_once(pay_node, payment_id, refund_id, PAYERS[5], before)
        assert (await refund_events(pay_node, payment_id)).count("refund.submitted") == 1

    async def test_a_crash_after_broadcast_and_a_restart_send_nothing_twice(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, chain_sender: ChainSender,
        artifacts: Artifacts,
    ) -> None:
        rpc = pay_node.chain.chain.rpc
        payment_id, refund_id, before = await self._approved(pay_node, merchant_account, PAYERS[6])
        with blocks_on_demand(rpc):
            running = asyncio.create_task(chain_sender.run_once())
            for _ in range(200):  # until the transaction is out (recorded, then broadcast)
                sends = await refund_sends(pay_node, refund_id)
                if sends and sends[0].tx_hashes and rpc.request("eth_getTransactionByHash", [sends[0].tx_hashes[0]]):
                    break
                await asyncio.sleep(0.05)
            running.cancel()  # the process dies before it learns the outcome
            with contextlib.suppress(asyncio.CancelledError):
                await running
            [send] = await refund_sends(pay_node, refund_id)
            assert send.status == "SENDING" and len(send.tx_hashes) == 1
            assert (await refund_rows(pay_node, payment_id))[0].status == "SUBMITTED"
            rpc.request("evm_mine", [])
        restarted = ChainSender(chain_sender.settings, pay_node.resources.db, rpc=chain_sender.rpc,
                                artifacts=artifacts)
        await restarted.run_once()
        await restarted.run_once()
        await self._refunded_once(pay_node, payment_id, refund_id, PAYERS[6], before)

    async def test_a_dropped_transaction_fails_the_refund_and_frees_its_amount(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, chain_sender: ChainSender,
    ) -> None:
        chain, rpc = pay_node.chain.chain, pay_node.chain.chain.rpc
        payment_id, refund_id, before = await self._approved(pay_node, merchant_account, PAYERS[7])
        impatient(chain_sender)
        with blocks_on_demand(rpc):
            await chain_sender.run_once()
            [send] = await refund_sends(pay_node, refund_id)
            for tx_hash in send.tx_hashes:
                rpc.request("anvil_dropTransaction", [tx_hash])
            task = asyncio.create_task(chain_sender.run_once())  # reconcile: the nonce is cancelled
            await asyncio.sleep(0.5)
            rpc.request("evm_mine", [])
            await task
        refund = (await refund_rows(pay_node, payment_id))[0]
        assert refund.status == "FAILED" and "dropped" in (refund.error or "")
        assert "refund.failed" in await refund_events(pay_node, payment_id)
        await pay_node.sync()
        assert chain.token_balance(PAYERS[7]) == before
        # its amount is refundable again
        again = await sdk(pay_node, merchant_account).request("POST", f"/v1/payments/{payment_id}/refunds",
                                                              {"amount": "4"})
        assert again.status_code == 201, again.text

    async def test_a_crash_after_a_dropped_transaction_is_known_still_fails_the_refund(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, chain_sender: ChainSender,
        artifacts: Artifacts,
    ) -> None:
        chain, rpc = pay_node.chain.chain, pay_node.chain.chain.rpc
        await chain_sender.run_once()  # what earlier tests left approved goes out first
        payment_id, refund_id, before = await self._approved(pay_node, merchant_account, PAYERS[8])
        impatient(chain_sender)
        dying = DiesBeforeApplying(chain_sender.settings, pay_node.resources.db, rpc=chain_sender.rpc,
                                   artifacts=artifacts)
        with blocks_on_demand(rpc):
            await dying.run_once()
            [send] = await refund_sends(pay_node, refund_id)
            for tx_hash in send.tx_hashes:
                rpc.request("anvil_dropTransaction", [tx_hash])
            task = asyncio.create_task(dying.run_once())  # reconcile: the nonce is cancelled, then it dies
            await asyncio.sleep(0.5)
            rpc.request("evm_mine", [])
            with pytest.raises(RuntimeError):
                await task
        [send] = await refund_sends(pay_node, refund_id)
        assert send.status == "DROPPED"
        restarted = ChainSender(chain_sender.settings, pay_node.resources.db, rpc=chain_sender.rpc,
                                artifacts=artifacts)
        await restarted.run_once()
        # the outcome and the refund's state commit together: not SUBMITTED forever, holding its amount
        refund = (await refund_rows(pay_node, payment_id))[0]
        assert refund.status == "FAILED" and "dropped" in (refund.error or "")
        assert (await refund_events(pay_node, payment_id)).count("refund.failed") == 1
        await pay_node.sync()
        assert chain.token_balance(PAYERS[8]) == before
        again = await sdk(pay_node, merchant_account).request("POST", f"/v1/payments/{payment_id}/refunds",
                                                              {"amount": "4"})
        assert again.status_code == 201, again.text


class TestLateMoney:
    async def test_late_money_covers_its_own_refund_net_of_the_fee_its_sweep_keeps(
        self, pay_node: PaymentNode, resources: Any, admin: AdminAccount, operator: Any,
        chain_sender: ChainSender,
    ) -> None:
        account = await make_merchant(resources)  # nothing else in its balance
        client = sdk(pay_node, account)
        chain = pay_node.chain.chain
        data = (await client.create_payment(amount="5")).json()["data"]
        await expire_now(pay_node, data["id"])
        chain.fund(PAYERS[9], 5 * UNIT)
        chain.transact(PAYERS[9], "MockUSDT", "transfer", data["depositAddress"], 5 * UNIT)
        await pay_node.sync()
        payment = await row(pay_node, data["id"])
        assert payment.status == "late" and payment.fee_units > 0
        # the sweep that brings the late money in keeps the payment's fee: only the rest can go back
        net = 5 * UNIT - 5 * UNIT * payment.fee_units // payment.amount_units
        path = f"/v1/payments/{data['id']}/refunds"
        whole = await client.request("POST", path, {"toAddress": ELSEWHERE})
        assert whole.status_code == 409 and whole.json()["error"]["code"] == "INSUFFICIENT_BALANCE", whole.text
        made = await client.request("POST", path, {"amount": format_units(net), "toAddress": ELSEWHERE})
        assert made.status_code == 201 and made.json()["data"]["status"] == "PENDING_APPROVAL", made.text
        await admin_approves(pay_node, admin, data["id"], made.json()["data"]["id"])
        await tasks.sweep_deposits(pay_node.resources.db, pay_node.settings, operator)
        await pay_node.sync()
        before = chain.token_balance(ELSEWHERE)
        await chain_sender.run_once()
        await pay_node.sync()
        [refund] = await refund_rows(pay_node, data["id"])
        assert refund.status == "COMPLETED", refund.error
        assert chain.token_balance(ELSEWHERE) - before == net


    async def test_a_refund_of_late_dust_is_swept_in_and_sent(
        self, pay_node: PaymentNode, resources: Any, admin: AdminAccount, operator: Any,
        chain_sender: ChainSender,
    ) -> None:
        account = await make_merchant(resources)
        client = sdk(pay_node, account)
        chain = pay_node.chain.chain
        data = (await client.create_payment(amount="5")).json()["data"]
        await expire_now(pay_node, data["id"])
        half = UNIT // 2  # under sweep_dust_usdt: the sweeper leaves such a deposit for later
        assert half < to_base_units(Decimal(pay_node.settings.sweep_dust_usdt))
        chain.fund(PAYERS[9], half)
        chain.transact(PAYERS[9], "MockUSDT", "transfer", data["depositAddress"], half)
        await pay_node.sync()
        payment = await row(pay_node, data["id"])
        assert payment.status == "late"
        net = half - half * payment.fee_units // payment.amount_units
        made = await client.request("POST", f"/v1/payments/{data['id']}/refunds",
                                    {"amount": format_units(net), "toAddress": ELSEWHERE})
        assert made.status_code == 201, made.text
        await admin_approves(pay_node, admin, data["id"], made.json()["data"]["id"])
        # a refund waits for this money: it is swept whatever its size, or the refund waits for ever
        await tasks.sweep_deposits(pay_node.resources.db, pay_node.settings, operator)
        await pay_node.sync()
        assert (await row(pay_node, data["id"])).swept == half
        before = chain.token_balance(ELSEWHERE)
        await chain_sender.run_once()
        await pay_node.sync()
        [refund] = await refund_rows(pay_node, data["id"])
        assert refund.status == "COMPLETED", refund.error
        assert chain.token_balance(ELSEWHERE) - before == net


class TestIdempotency:
    async def test_the_same_key_replays_only_the_same_request(self, pay_node: PaymentNode,
                                                              merchant_account: MerchantAccount) -> None:
        first_payment = await paid(pay_node, merchant_account, PAYERS[8])
        second_payment = await paid(pay_node, merchant_account, PAYERS[8])
        client = sdk(pay_node, merchant_account)
        path = f"/v1/payments/{first_payment['id']}/refunds"
        too_long = await client.request("POST", path, {"amount": "1"}, headers={"Idempotency-Key": "k" * 201})
        assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "VALIDATION_ERROR"

        key = {"Idempotency-Key": "r-" + uuid.uuid4().hex}
        body = {"amount": "1", "reason": "broken cup"}
        first = await client.request("POST", path, body, headers=key)
        again = await client.request("POST", path, body, headers=key)
        assert first.status_code == again.status_code == 201, first.text
        assert again.json()["data"]["id"] == first.json()["data"]["id"]
        assert again.headers.get("idempotent-replayed") == "true"
        for other in ({"amount": "1", "reason": "chipped cup"}, {"amount": "1", "reason": "broken cup",
                                                                 "toAddress": PAYERS[9]}, {"amount": "2"}):
            reused = await client.request("POST", path, other, headers=key)
            assert reused.status_code == 409 and reused.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED", other
        elsewhere = await client.request("POST", f"/v1/payments/{second_payment['id']}/refunds", body, headers=key)
        assert elsewhere.status_code == 409
        assert len(await refund_rows(pay_node, first_payment["id"])) == 1
        assert await refund_rows(pay_node, second_payment["id"]) == []

    async def test_one_key_on_two_payments_at_once_is_one_refund_and_one_409(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        payments = [await paid(pay_node, merchant_account, PAYERS[9]) for _ in range(2)]
        client = sdk(pay_node, merchant_account)
        key = {"Idempotency-Key": "both-" + uuid.uuid4().hex}
        replies = await asyncio.gather(*(client.request("POST", f"/v1/payments/{p['id']}/refunds", {"amount": "1"},
                                                        headers=key) for p in payments))
        assert sorted(r.status_code for r in replies) == [201, 409], [r.text for r in replies]
        rows = [len(await refund_rows(pay_node, p["id"])) for p in payments]
        assert sorted(rows) == [0, 1]


class TestBadInput:
    async def test_bad_input_is_a_4xx_and_stores_nothing(self, pay_node: PaymentNode, resources: Any) -> None:
        account = await make_merchant(resources)
        data = await paid(pay_node, account, PAYERS[0], amount="5")
        client = sdk(pay_node, account)
        path = f"/v1/payments/{data['id']}/refunds"
        cases: list[tuple[Any, int, str]] = [
            ({"amount": "0"}, 400, "VALIDATION_ERROR"),
            ({"amount": 0}, 400, "VALIDATION_ERROR"),
            ({"amount": "-1"}, 400, "VALIDATION_ERROR"),
            ({"amount": "0.0000000000000000001"}, 400, "VALIDATION_ERROR"),  # rounds to nothing
            ({"amount": "5.01"}, 400, "VALIDATION_ERROR"),  # above what was paid
            ({"amount": "abc"}, 400, "VALIDATION_ERROR"),
            ({"amount": "1e3"}, 400, "VALIDATION_ERROR"),
            ({"amount": "NaN"}, 400, "VALIDATION_ERROR"),
            ({"amount": True}, 400, "VALIDATION_ERROR"),
            ({"amount": {"value": 1}}, 400, "VALIDATION_ERROR"),
            ({"amount": "1", "toAddress": "0x12"}, 400, "VALIDATION_ERROR"),
            ({"amount": "1", "toAddress": ""}, 400, "VALIDATION_ERROR"),
            ({"amount": "1", "toAddress": "0x" + "0" * 40}, 400, "VALIDATION_ERROR"),
            ({"amount": "1", "toAddress": 12}, 400, "VALIDATION_ERROR"),
            ({"amount": "1", "reason": ["x"]}, 400, "VALIDATION_ERROR"),
            ({"amount": "1", "reason": "broken\u0000cup"}, 400, "VALIDATION_ERROR"),  # PostgreSQL stores no NUL
            (["amount", "1"], 400, "VALIDATION_ERROR"),
        ]
        for body, status, code in cases:
            reply = await client.request("POST", path, body)
            assert reply.status_code == status and reply.json()["error"]["code"] == code, (body, reply.text)
        # a mixed-case address is an EIP-55 checksum: a wrong one is a typo, refused even from the portal
        mistyped = await portal(pay_node, account, path, {"amount": "1", "toAddress": ELSEWHERE.replace("Ef1", "EF1")})
        assert mistyped.status_code == 400 and "checksum" in mistyped.json()["error"]["message"], mistyped.text
        not_json = await client.request("POST", path, raw=b"{amount")
        assert not_json.status_code == 400, not_json.text
        bad_id = await client.request("POST", "/v1/payments/not-a-uuid/refunds", {"amount": "1"})
        assert bad_id.status_code == 400 and bad_id.json()["error"]["code"] == "INVALID_ID"
        unknown = await client.request("POST", f"/v1/payments/{uuid.uuid4()}/refunds", {"amount": "1"})
        assert unknown.status_code == 404
        other = await make_merchant(resources)
        foreign = await sdk(pay_node, other).request("POST", path, {"amount": "1"})
        assert foreign.status_code == 404
        await asyncio.sleep(0.2)  # a request's commit lands after its response
        assert await refund_rows(pay_node, data["id"]) == []
        async with pay_node.resources.db.unit_of_work() as session:
            announced = (await session.execute(select(func.count()).where(
                OutboxMessage.key == data["id"], OutboxMessage.type.like("refund.%")))).scalar_one()
        assert announced == 0

    async def test_bad_input_on_the_admin_queue_is_a_4xx_and_decides_nothing(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, admin: AdminAccount,
    ) -> None:
        data = await paid(pay_node, merchant_account, PAYERS[1])
        made = await portal(pay_node, merchant_account, f"/v1/payments/{data['id']}/refunds",
                            {"amount": "1", "toAddress": ELSEWHERE})
        assert made.status_code == 201 and made.json()["data"]["status"] == "PENDING_APPROVAL", made.text
        await refund_status(pay_node, data["id"], "PENDING_APPROVAL")
        refund_id = made.json()["data"]["id"]
        for verb in ("approve", "reject"):
            reply = await pay_node.http.post(f"/v1/admin/refunds/{refund_id}/{verb}", json={"reason": "a\u0000b"},
                                             headers=admin.auth_headers)
            assert reply.status_code == 400 and reply.json()["error"]["code"] == "VALIDATION_ERROR", reply.text
        for status in ("%00", "PENDING%00"):
            listed = await pay_node.http.get(f"/v1/admin/refunds?status={status}", headers=admin.auth_headers)
            assert listed.status_code == 400 and listed.json()["error"]["code"] == "VALIDATION_ERROR", listed.text
        unknown = await pay_node.http.post(f"/v1/admin/refunds/{uuid.uuid4()}/approve", headers=admin.auth_headers)
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "REFUND_NOT_FOUND"
        await asyncio.sleep(0.2)  # a request's commit lands after its response
        [refund] = await refund_rows(pay_node, data["id"])
        assert refund.status == "PENDING_APPROVAL" and refund.decided_by is None
