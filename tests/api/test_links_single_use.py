"""A single-use payment link holds at most one open payment: concurrent visitors get one payment
and clear 409s, the payment's expiry frees the link, and the merchant never gets two paid
payments from it. Real app on a loopback port, real PostgreSQL and anvil, in-process indexer."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from node.payments import states
from node.payments.models import Payment
from tests.api.test_payments_rest import link_row, pay_in_full, sdk, slug
from tests.fixtures.accounts import MerchantAccount
from tests.fixtures.contracts import PAYERS
from tests.fixtures.payments import PaymentNode


async def single_use_link(node: PaymentNode, account: MerchantAccount) -> tuple[str, str]:
    name = slug()
    created = await sdk(node, account).request("POST", "/v1/payment-links", {
        "name": "One-off", "slug": name, "amount": "2", "currency": "USDT", "reusable": False})
    assert created.status_code == 201, created.text
    return name, created.json()["data"]["id"]


async def link_payments(node: PaymentNode, link_id: str) -> list[Payment]:
    async with node.resources.db.unit_of_work() as session:
        rows = await session.execute(select(Payment).where(Payment.link_id == uuid.UUID(link_id))
                                     .order_by(Payment.created_at))
        return list(rows.scalars())


def payment_of(location: str) -> uuid.UUID:
    return uuid.UUID(location.rsplit("/", 1)[1])


class TestSingleUseLinkHoldsOneOpenPayment:
    async def test_concurrent_visitors_get_one_payment_and_clear_409s(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        await pay_node.set_rate("300")
        name, link_id = await single_use_link(pay_node, merchant_account)
        replies = await asyncio.gather(*(pay_node.http.post(f"/pay/{name}", data={}) for _ in range(12)))
        statuses = sorted(r.status_code for r in replies)
        assert statuses == [303] + [409] * 11, statuses
        assert all("payment in progress" in r.text for r in replies if r.status_code == 409)
        made = await link_payments(pay_node, link_id)
        assert len(made) == 1 and made[0].status == "initiated"
        # the lookup and the page say the same while the payment is open
        public = await pay_node.http.get(f"/v1/public/payment-links/by-slug/{name}")
        assert public.status_code == 409 and public.json()["error"]["code"] == "LINK_IN_USE"
        assert (await pay_node.http.get(f"/pay/{name}")).status_code == 409
        assert (await pay_node.http.get(f"/pay/{name}/poster")).status_code == 200
        # still one payment after all of that
        assert len(await link_payments(pay_node, link_id)) == 1

    async def test_expiry_releases_the_link_and_only_one_payment_is_ever_paid(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        await pay_node.set_rate("300")
        name, link_id = await single_use_link(pay_node, merchant_account)
        first = await pay_node.http.post(f"/pay/{name}", data={})
        assert first.status_code == 303
        first_id = payment_of(first.headers["location"])
        assert (await pay_node.http.post(f"/pay/{name}", data={})).status_code == 409
        # the first visitor walks away: past its expiry it still holds the link until the expiry job
        # closes it (money could still make it paid until then)
        async with pay_node.resources.db.unit_of_work() as session:
            await session.execute(update(Payment).where(Payment.id == first_id)
                                  .values(expire_at=datetime.now(UTC) - timedelta(seconds=5)))
        assert (await pay_node.http.post(f"/pay/{name}", data={})).status_code == 409
        async with pay_node.resources.db.unit_of_work() as session:
            assert await states.expire_due(session, pay_node.settings) >= 1
        second = await pay_node.http.post(f"/pay/{name}", data={})
        assert second.status_code == 303
        second_id = payment_of(second.headers["location"])
        assert (await pay_node.http.post(f"/pay/{name}", data={})).status_code == 409
        await pay_in_full(pay_node, second_id, PAYERS[1])
        assert (await link_row(pay_node, link_id)).usage_count == 1
        gone = await pay_node.http.post(f"/pay/{name}", data={})
        assert gone.status_code == 410
        # the first customer sends the amount to the expired payment's deposit address anyway (the
        # gateway's pay would take nothing after the intent's deadline): late money held for the
        # merchant, not a second paid payment of the link
        async with pay_node.resources.db.unit_of_work() as session:
            expired = await session.get(Payment, first_id)
        assert expired is not None
        pay_node.chain.chain.fund(PAYERS[2], int(expired.amount_units))
        pay_node.chain.chain.transact(PAYERS[2], "MockUSDT", "transfer", expired.deposit_address,
                                      int(expired.amount_units))
        await pay_node.sync()
        by_id = {p.id: p for p in await link_payments(pay_node, link_id)}
        assert by_id[first_id].status == "late" and by_id[second_id].status == "paid"
        assert [p.status for p in by_id.values()].count("paid") == 1
        assert (await link_row(pay_node, link_id)).usage_count == 1
        # the merchant accepts the late money: two paid payments, but the link was used once
        accepted = await sdk(pay_node, merchant_account).request("POST", f"/v1/payments/{first_id}/late/accept")
        assert accepted.status_code == 200 and accepted.json()["data"]["state"] == "paid", accepted.text
        assert (await link_row(pay_node, link_id)).usage_count == 1

    async def test_reusable_links_still_take_many_open_payments(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        name = slug()
        created = await sdk(pay_node, merchant_account).request("POST", "/v1/payment-links", {
            "name": "Tea", "slug": name, "amount": "1", "currency": "USDT"})
        replies = await asyncio.gather(*(pay_node.http.post(f"/pay/{name}", data={}) for _ in range(4)))
        assert [r.status_code for r in replies] == [303] * 4
        assert len(await link_payments(pay_node, created.json()["data"]["id"])) == 4
