"""The deposit addresses the indexer follows: open payments, deposits not yet swept, and closed
payments for a bounded window after their deadline; nothing older."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from node.payments.handlers import DepositWatchCache
from node.payments.models import Payment
from tests.api.test_payments_lifecycle import row, sdk
from tests.fixtures.accounts import MerchantAccount
from tests.fixtures.payments import PaymentNode

HOUR = 3600.0


async def _set(node: PaymentNode, payment_id: str, **values: object) -> None:
    async with node.resources.db.unit_of_work() as session:
        await session.execute(update(Payment).where(Payment.id == uuid.UUID(payment_id)).values(**values))


class TestDepositWatch:
    async def test_open_unswept_and_recently_closed_are_followed_older_ones_not(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        made = [(await client.create_payment(amount="2")).json()["data"] for _ in range(5)]
        opened, unswept, late, old, old_paid = made
        for data in made:
            await row(pay_node, data["id"])
        now = datetime.now(UTC)
        await _set(pay_node, late["id"], status="expired", expire_at=now - timedelta(hours=2))
        await _set(pay_node, old["id"], status="expired", expire_at=now - timedelta(hours=30))
        await _set(pay_node, old_paid["id"], status="paid", expire_at=now - timedelta(hours=30))
        await _set(pay_node, unswept["id"], status="paid", expire_at=now - timedelta(hours=30),
                   received_final=2, deposited_final=2, swept=0)
        address = {d["id"]: (await row(pay_node, d["id"])).deposit_address for d in made}

        watch = DepositWatchCache(pay_node.resources.db, ttl=0, late_window_s=24 * HOUR,
                                  chain_id=pay_node.chain.chain_id)
        followed = set(await watch())
        assert {address[opened["id"]], address[unswept["id"]], address[late["id"]]} <= followed
        assert address[old["id"]] not in followed and address[old_paid["id"]] not in followed

    async def test_a_payment_seen_open_stays_followed_for_its_window_after_closing(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount,
    ) -> None:
        client = sdk(pay_node, merchant_account)
        data = (await client.create_payment(amount="2")).json()["data"]
        address = (await row(pay_node, data["id"])).deposit_address
        # past its deadline but not expired yet (the expiry job runs later): followed while open
        await _set(pay_node, data["id"], expire_at=datetime.now(UTC) - timedelta(minutes=1))
        # full reads never again: what follows comes from the index-backed refresh and memory
        watch = DepositWatchCache(pay_node.resources.db, ttl=0, full_ttl=10**9, late_window_s=0.5,
                                  chain_id=pay_node.chain.chain_id)
        assert address in await watch()
        await _set(pay_node, data["id"], status="expired")
        assert address in await watch()  # closed, inside the window after it was last seen open
        await asyncio.sleep(0.6)
        assert address not in await watch()
