"""The sweeper against real anvil + PostgreSQL + the in-process indexer: it sweeps only what waits
at deposit addresses (plain transfers, never money paid with ``pay``), leaves dust (reported) until
more arrives, sends nothing while gas costs more than the maximum; ``deposited_final`` follows the
receipts (recompute, reorg, the migration's backfill)."""

from __future__ import annotations

import importlib
import uuid

from prometheus_client import REGISTRY
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.payments import onchain, states, tasks
from node.payments.models import Payment, Receipt
from node.payments.service import intent_of
from node.settlement import repository as balances
from tests.api.sdk_client import SdkClient
from tests.fixtures.accounts import MerchantAccount
from tests.fixtures.contracts import PAYERS, UNIT
from tests.fixtures.payments import PaymentNode

MIGRATION = "node.migrations.versions.20261125_payments_0002_deposited_final"


def sdk(node: PaymentNode, account: MerchantAccount) -> SdkClient:
    return SdkClient(node.http, account.sdk_credential("test"))


async def row(node: PaymentNode, payment_id: str) -> Payment:
    async with node.resources.db.unit_of_work() as session:
        payment = await session.get(Payment, uuid.UUID(payment_id))
    assert payment is not None
    return payment


async def create(node: PaymentNode, account: MerchantAccount, amount: str) -> Payment:
    data = (await sdk(node, account).create_payment(amount=amount)).json()["data"]
    return await row(node, data["id"])


def transfer(node: PaymentNode, payment: Payment, amount: int, payer: str = PAYERS[1]) -> None:
    node.chain.chain.fund(payer, amount)
    node.chain.chain.transact(payer, "MockUSDT", "transfer", payment.deposit_address, amount)


def wallet_pay(node: PaymentNode, payment: Payment, payer: str = PAYERS[2]) -> None:
    node.chain.chain.fund(payer, int(payment.amount_units))
    node.chain.chain.pay(payer, intent_of(payment), bytes(payment.signature))


async def balances_equal_the_contract(node: PaymentNode, payment: Payment) -> None:
    async with node.resources.db.unit_of_work() as session:
        db = await balances.available(session, node.chain.chain_id, bytes(payment.merchant_key),
                                      payment.token.lower())
        treasury = await balances.treasury_balances(session, node.chain.chain_id)
    assert db == node.chain.chain.merchant_balance(bytes(payment.merchant_key))
    assert treasury.get(payment.token.lower(), 0) == node.chain.chain.treasury()


def skipped(run: tasks.SweepRun, reason: str) -> set[object]:
    return {s.candidate.key for s in run.skipped if s.reason == reason}


class TestWhatTheSweeperPicks:
    async def test_money_paid_with_pay_is_never_swept_only_transfers_are(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, operator: onchain.Operator,
    ) -> None:
        paid = await create(pay_node, merchant_account, "5")
        mixed = await create(pay_node, merchant_account, "5")  # pay, then 2 more by transfer
        deposit = await create(pay_node, merchant_account, "3")
        wallet_pay(pay_node, paid)
        wallet_pay(pay_node, mixed)
        transfer(pay_node, mixed, 2 * UNIT)
        transfer(pay_node, deposit, 3 * UNIT)
        await pay_node.sync()
        paid, mixed, deposit = [await row(pay_node, str(p.id)) for p in (paid, mixed, deposit)]
        assert (paid.status, paid.received_final, paid.deposited_final) == ("paid", 5 * UNIT, 0)
        assert (mixed.status, mixed.received_final, mixed.deposited_final) == ("overpaid", 7 * UNIT, 2 * UNIT)
        assert (deposit.status, deposit.received_final, deposit.deposited_final) == ("paid", 3 * UNIT, 3 * UNIT)

        run = await tasks.run_sweeps(pay_node.resources.db, pay_node.settings, operator)
        assert run.swept >= 2 and run.error is None  # other tests' final deposits may be swept too
        paid = await row(pay_node, str(paid.id))
        assert paid.sweep_tx is None and paid.sweep_at is None  # never a candidate
        assert (await row(pay_node, str(mixed.id))).sweep_tx and (await row(pay_node, str(deposit.id))).sweep_tx
        await pay_node.sync()
        for p in (paid, mixed, deposit):
            now = await row(pay_node, str(p.id))
            assert now.swept == now.deposited_final and now.sweep_tx is None
        assert pay_node.chain.chain.token_balance(mixed.deposit_address) == 0
        # nothing left to sweep for these payments: the next run leaves them alone
        again = await tasks.run_sweeps(pay_node.resources.db, pay_node.settings, operator)
        assert {paid.id, mixed.id, deposit.id}.isdisjoint(s.candidate.key for s in again.skipped)
        for p in (paid, mixed, deposit):
            assert (await row(pay_node, str(p.id))).sweep_at is None
        async with pay_node.resources.db.unit_of_work() as session:
            unswept = set((await session.execute(select(Payment.id).where(
                Payment.chain_id == paid.chain_id, text("deposited_final > swept")))).scalars())
        assert {paid.id, mixed.id, deposit.id}.isdisjoint(unswept)  # out of ix_payments_unswept
        await balances_equal_the_contract(pay_node, paid)

    async def test_dust_is_left_and_reported_then_swept_once_more_arrives(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, operator: onchain.Operator,
    ) -> None:
        payment = await create(pay_node, merchant_account, "5")
        transfer(pay_node, payment, 4 * UNIT // 10)  # 0.4 < sweep_dust_usdt = 1
        await pay_node.sync()
        run = await tasks.run_sweeps(pay_node.resources.db, pay_node.settings, operator)
        assert payment.id in skipped(run, "dust") and payment.id not in skipped(run, "gas_price_too_high")
        count, total = run.skipped_totals()["dust"]
        assert count >= 1 and total >= 4 * UNIT // 10
        assert REGISTRY.get_sample_value("openpay_sweep_skipped_deposits", {"reason": "dust"}) == count
        assert REGISTRY.get_sample_value("openpay_sweep_skipped_usdt", {"reason": "dust"}) == total / UNIT
        left = await row(pay_node, str(payment.id))
        assert left.sweep_tx is None and left.sweep_at is None and left.deposited_final == 4 * UNIT // 10
        assert pay_node.chain.chain.token_balance(payment.deposit_address) == 4 * UNIT // 10

        transfer(pay_node, payment, 8 * UNIT // 10)  # 1.2 waiting now
        await pay_node.sync()
        run = await tasks.run_sweeps(pay_node.resources.db, pay_node.settings, operator)
        assert run.swept >= 1 and payment.id not in skipped(run, "dust")
        assert (await row(pay_node, str(payment.id))).sweep_tx
        await pay_node.sync()
        swept = await row(pay_node, str(payment.id))
        assert swept.swept == swept.deposited_final == 12 * UNIT // 10 and swept.status == "underpaid"
        assert pay_node.chain.chain.token_balance(payment.deposit_address) == 0
        await balances_equal_the_contract(pay_node, swept)

    async def test_a_gas_price_above_the_maximum_sweeps_nothing(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, operator: onchain.Operator,
    ) -> None:
        payment = await create(pay_node, merchant_account, "3")
        transfer(pay_node, payment, 3 * UNIT)
        await pay_node.sync()
        dear = pay_node.settings.model_copy(update={"sweep_max_gas_price_wei": 1})
        nonce = pay_node.chain.chain.rpc.request("eth_getTransactionCount", [operator.sender.address, "latest"])
        run = await tasks.run_sweeps(pay_node.resources.db, dear, operator)
        assert run.swept == 0 and run.batches == 0 and run.gas_price is not None and run.gas_price > 1
        assert payment.id in skipped(run, "gas_price_too_high")
        left = REGISTRY.get_sample_value("openpay_sweep_skipped_deposits", {"reason": "gas_price_too_high"})
        assert left is not None and left >= 1
        assert await tasks.sweep_deposits(pay_node.resources.db, dear, operator) == 0
        assert pay_node.chain.chain.rpc.request(
            "eth_getTransactionCount", [operator.sender.address, "latest"]) == nonce  # nothing sent
        waiting = await row(pay_node, str(payment.id))
        assert waiting.sweep_tx is None and waiting.sweep_at is None  # not claimed: swept when gas is cheaper
        assert pay_node.chain.chain.token_balance(payment.deposit_address) == 3 * UNIT

        assert await tasks.sweep_deposits(pay_node.resources.db, pay_node.settings, operator) >= 1
        await pay_node.sync()
        swept = await row(pay_node, str(payment.id))
        assert swept.swept == 3 * UNIT and pay_node.chain.chain.token_balance(payment.deposit_address) == 0
        await balances_equal_the_contract(pay_node, swept)


class TestDepositedFinal:
    async def test_a_reorged_transfer_leaves_it_with_the_receipt(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, session: AsyncSession,
    ) -> None:
        payment = await create(pay_node, merchant_account, "4")
        transfer(pay_node, payment, 4 * UNIT)
        await pay_node.sync()
        assert (await row(pay_node, str(payment.id))).deposited_final == 4 * UNIT
        # what the indexer's ``reverted`` does with the receipts of a dropped block (rolled back after)
        await session.execute(delete(Receipt).where(Receipt.payment_id == payment.id))
        await states.recompute(session, pay_node.settings, [payment.id])
        gone = (await session.execute(select(Payment).where(Payment.id == payment.id))).scalar_one()
        assert gone.deposited_final == gone.received_final == 0 and gone.status == "initiated"

    async def test_the_migrations_backfill_gives_what_recompute_gives(
        self, pay_node: PaymentNode, merchant_account: MerchantAccount, session: AsyncSession,
    ) -> None:
        paid = await create(pay_node, merchant_account, "2")
        mixed = await create(pay_node, merchant_account, "2")
        deposit = await create(pay_node, merchant_account, "2")
        nothing = await create(pay_node, merchant_account, "2")
        wallet_pay(pay_node, paid)
        wallet_pay(pay_node, mixed)
        transfer(pay_node, mixed, UNIT)
        transfer(pay_node, deposit, UNIT)
        transfer(pay_node, deposit, UNIT // 2)
        await pay_node.sync()
        ids = [paid.id, mixed.id, deposit.id, nothing.id]
        # a receipt seen but not final counts in received_seen only: the backfill must leave it out too
        session.add(Receipt(chain_id=deposit.chain_id, block_hash="0x" + uuid.uuid4().hex * 2, log_index=0,
                            block_number=10**9, tx_hash="0x" + "ab" * 32, payment_id=deposit.id, kind="TRANSFER",
                            payer=PAYERS[1].lower(), amount=7 * UNIT, final=False))
        await states.recompute(session, pay_node.settings, ids)

        async def deposited() -> dict[uuid.UUID, int]:
            rows = await session.execute(select(Payment.id, Payment.deposited_final).where(Payment.id.in_(ids)))
            return {pid: int(value) for pid, value in rows}

        expected = await deposited()
        assert expected == {paid.id: 0, mixed.id: UNIT, deposit.id: 3 * UNIT // 2, nothing.id: 0}
        # as the migration finds the rows: the new column at its default
        await session.execute(update(Payment).where(Payment.id.in_(ids)).values(deposited_final=0))
        migration = importlib.import_module(MIGRATION)
        await session.execute(text(migration.BACKFILL_DEPOSITED_FINAL), {"payment_ids": ids})
        assert await deposited() == expected
