"""LKR settlement batches, payout-address changes and the cool-down, the treasury, and the audit,
against anvil + PostgreSQL with the indexer in-process."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import select, update

from chain.intents import uuid_to_bytes32
from node.bus import OutboxMessage
from node.exchange import treasury
from node.exchange.treasury_models import TreasuryWithdrawalRequest
from node.merchants import accounts
from node.merchants import repository as merchants_repo
from node.settlement import service
from node.settlement.audit import run_audit
from node.settlement.errors import BankAccountNotVerified, InsufficientBalance, SameApprover, TwoFactorRequired
from node.settlement.models import PayoutAddress, SettlementBatch
from tests.fixtures.accounts import MerchantAccount
from tests.fixtures.contracts import PAYERS, REPORTER
from tests.fixtures.settlement import Money, usdt

RATE = 300 * 10**8 + 12_345_678  # 300.12345678 LKR per USDT


def post_rate(money: Money, answer: int = RATE) -> None:
    money.ic.chain.transact(REPORTER, "OpenPayRateOracle", "postAnswer", answer, money.ic.chain.now())


async def verified_bank_account(money: Money, account: MerchantAccount) -> uuid.UUID:
    async with money.db.unit_of_work() as session:
        bank = await service.add_bank_account(session, account.merchant_id, bank_name="Commercial Bank",
                                              branch="Colombo 3", account_name="Shop", account_number="800012345",
                                              actor_id=account.user_id)
        await service.verify_bank_account(session, bank.id, verified=True, admin_id=uuid.uuid4())
        return bank.id


async def outbox_types(money: Money, key: str) -> list[str]:
    async with money.db.unit_of_work() as session:
        rows = await session.execute(select(OutboxMessage.type).where(OutboxMessage.key == key)
                                     .order_by(OutboxMessage.created_at))
        return list(rows.scalars())


class TestSettlementBatch:
    async def test_a_batch_is_settled_on_chain_at_the_oracle_rate_and_then_paid(self, money: Money) -> None:
        account = await money.merchant(usdt(500))
        bank_id = await verified_bank_account(money, account)
        post_rate(money)
        async with money.db.unit_of_work() as session:
            batch, _ = await service.request_settlement(session, money.ctx, account.merchant_id, amount=usdt(200),
                                                        bank_account_id=None, idempotency_key="s1",
                                                        actor_type="SYSTEM", actor_id=None)
            assert await service.spendable(session, money.ctx, account.merchant_id) == usdt(300)
        treasury_before = money.ic.chain.treasury()
        await money.run()
        async with money.db.unit_of_work() as session:
            settled = await service.get_batch(session, batch.id)
        assert settled.status == "SETTLED_ON_CHAIN" and settled.bank_account_id == bank_id
        assert settled.rate_fixed == RATE and settled.fiat_cents == 200 * RATE // 10**6  # 60024.69 LKR
        assert money.ic.chain.treasury() - treasury_before == usdt(200)
        assert money.ic.chain.merchant_balance(uuid_to_bytes32(account.merchant_id)) == usdt(300)
        async with money.db.unit_of_work() as session:
            paid = await service.record_bank_payout(session, batch.id, bank_reference="CB-7781",
                                                    paid_on=date(2026, 11, 25), admin_id=uuid.uuid4())
            assert paid.status == "PAID"
            lifetime = (await service.balance(session, money.ctx, account.merchant_id))["lifetimeLkr"]
        assert lifetime["settled"] == "60024.69"
        assert await outbox_types(money, str(batch.id)) == ["settlement.requested", "settlement.submitted",
                                                            "settlement.initiated", "settlement.completed"]
        await money.ic.assert_db_equals_chain(money.db)

    async def test_an_unverified_bank_account_cannot_receive(self, money: Money) -> None:
        account = await money.merchant(usdt(100))
        async with money.db.unit_of_work() as session:
            await service.add_bank_account(session, account.merchant_id, bank_name="B", branch=None,
                                           account_name="A", account_number="123456", actor_id=None)
        with pytest.raises(BankAccountNotVerified):
            async with money.db.unit_of_work() as session:
                await service.request_settlement(session, money.ctx, account.merchant_id, amount=usdt(10),
                                                 bank_account_id=None, idempotency_key=None, actor_type="SYSTEM",
                                                 actor_id=None)

    async def test_withdrawals_and_settlements_share_one_reservation(self, money: Money) -> None:
        account = await money.merchant(usdt(100))
        await verified_bank_account(money, account)
        async with money.db.unit_of_work() as session:
            await service.request_withdrawal(session, money.ctx, account.merchant_id, usdt(60), idempotency_key=None,
                                             actor_type="SYSTEM", actor_id=None)
        with pytest.raises(InsufficientBalance):
            async with money.db.unit_of_work() as session:
                await service.request_settlement(session, money.ctx, account.merchant_id, amount=usdt(41),
                                                 bank_account_id=None, idempotency_key=None, actor_type="SYSTEM",
                                                 actor_id=None)


async def enable_totp(money: Money, account: MerchantAccount) -> str:
    settings = money.resources.settings
    async with money.db.unit_of_work() as session:
        user = await merchants_repo.get_user(session, account.user_id, for_update=True)
        enrolment = await accounts.start_totp(session, settings, user)
        await accounts.confirm_totp(session, settings, user, pyotp.TOTP(enrolment.secret).now())
    return enrolment.secret


class TestPayoutAddress:
    async def test_a_change_takes_effect_only_after_the_cool_down(self, money: Money) -> None:
        old, new = PAYERS[5], PAYERS[6]
        account = await money.merchant(usdt(100), payout=old)
        secret = await enable_totp(money, account)
        settings = money.resources.settings.model_copy(update={"payout_address_cooldown_s": 3600.0})
        async with money.db.unit_of_work() as session:
            pending = await service.request_payout_address(
                session, settings, money.ctx, account.merchant_id, account.user_id, new,
                code=pyotp.TOTP(secret).at(time.time() + 30))
        assert pending.status == "PENDING"
        new_before, old_before = money.ic.chain.token_balance(new), money.ic.chain.token_balance(old)
        async with money.db.unit_of_work() as session:
            first, _ = await service.request_withdrawal(session, money.ctx, account.merchant_id, usdt(20),
                                                        idempotency_key=None, actor_type="SYSTEM", actor_id=None)
        await money.run()
        assert (await money.withdrawal(first.id)).status == "COMPLETED"
        assert money.ic.chain.token_balance(new) == new_before
        assert money.ic.chain.token_balance(old) - old_before == usdt(20)

        # a withdrawal requested to the old address, then the cool-down ends before it is sent
        async with money.db.unit_of_work() as session:
            second, _ = await service.request_withdrawal(session, money.ctx, account.merchant_id, usdt(30),
                                                         idempotency_key=None, actor_type="SYSTEM", actor_id=None)
            await session.execute(update(PayoutAddress).where(PayoutAddress.id == pending.id)
                                  .values(effective_at=datetime.now(UTC) - timedelta(seconds=1)))
        await money.run()
        failed = await money.withdrawal(second.id)
        assert failed.status == "FAILED" and "payout address changed" in (failed.reason or "")
        assert money.ic.chain.token_balance(new) == new_before
        async with money.db.unit_of_work() as session:
            active = (await session.execute(select(PayoutAddress).where(PayoutAddress.id == pending.id))).scalar_one()
            assert active.status == "ACTIVE"
            third, _ = await service.request_withdrawal(session, money.ctx, account.merchant_id, usdt(30),
                                                        idempotency_key=None, actor_type="SYSTEM", actor_id=None)
            mails = (await session.execute(select(OutboxMessage.payload).where(
                OutboxMessage.type == "email.requested", OutboxMessage.key == account.email))).scalars().all()
        assert any(m["template"] == "payout_address.changed" for m in mails)
        await money.run()
        assert (await money.withdrawal(third.id)).status == "COMPLETED"
        assert money.ic.chain.token_balance(new) - new_before == usdt(30)

    async def test_a_change_needs_two_factor_authentication(self, money: Money) -> None:
        account = await money.merchant(payout=None)
        with pytest.raises(TwoFactorRequired):
            async with money.db.unit_of_work() as session:
                await service.request_payout_address(session, money.resources.settings, money.ctx,
                                                     account.merchant_id, account.user_id, PAYERS[6], code="123456")


class TestTreasury:
    async def test_two_treasurers_above_the_threshold_then_withdrawn_on_chain(self, money: Money) -> None:
        account = await money.merchant(payout=None)
        chain = money.ic.chain
        chain.fund(PAYERS[0], usdt(10_000))
        chain.pay(PAYERS[0], chain.intent(uuid_to_bytes32(account.merchant_id), usdt(10_000), fee=usdt(200)))
        await money.index()
        settings = money.resources.settings.model_copy(update={"treasury_approval_threshold_usdt": "100"})
        first, second = uuid.uuid4(), uuid.uuid4()
        exchange_address = "0x" + "d3" * 20
        async with money.db.unit_of_work() as session:
            request = await treasury.request_withdrawal(session, settings, money.ctx, amount=usdt(150),
                                                        to_address=exchange_address, exchange="binance",
                                                        admin_id=first)
            assert request.status == "REQUESTED"
            with pytest.raises(InsufficientBalance):
                await treasury.request_withdrawal(session, settings, money.ctx, amount=usdt(60),
                                                  to_address=exchange_address, exchange=None, admin_id=first)
        with pytest.raises(SameApprover):
            async with money.db.unit_of_work() as session:
                await treasury.approve_withdrawal(session, request.id, admin_id=first, approve=True)
        async with money.db.unit_of_work() as session:
            await treasury.approve_withdrawal(session, request.id, admin_id=second, approve=True)
        await money.run()
        async with money.db.unit_of_work() as session:
            done = (await session.execute(select(TreasuryWithdrawalRequest).where(
                TreasuryWithdrawalRequest.id == request.id))).scalar_one()
        assert done.status == "COMPLETED" and done.tx_hash
        assert chain.token_balance(exchange_address) == usdt(150)
        await money.ic.assert_db_equals_chain(money.db)


class TestAudit:
    async def test_the_audit_agrees_and_then_names_a_tampered_balance(self, money: Money) -> None:
        account = await money.merchant(usdt(100))
        async with money.db.unit_of_work() as session:
            await service.request_withdrawal(session, money.ctx, account.merchant_id, usdt(25), idempotency_key=None,
                                             actor_type="SYSTEM", actor_id=None)
        await money.run()
        gateway = money.ic.chain.gateway
        result = await run_audit(money.db, money.rpc, money.ctx, gateway)
        assert result.differences == [] and result.events >= 3
        from node.settlement.models import MerchantBalance

        key = uuid_to_bytes32(account.merchant_id)
        async with money.db.unit_of_work() as session:
            await session.execute(update(MerchantBalance).where(MerchantBalance.merchant_key == key,
                                                                MerchantBalance.chain_id == money.ctx.chain_id)
                                  .values(available=MerchantBalance.available + 1))
        result = await run_audit(money.db, money.rpc, money.ctx, gateway)
        [difference] = result.differences
        assert difference.source == "projection" and difference.account == "merchant 0x" + key.hex()
        assert difference.actual - difference.expected == 1
        async with money.db.unit_of_work() as session:  # leave the shared database as the chain says
            await session.execute(update(MerchantBalance).where(MerchantBalance.merchant_key == key,
                                                                MerchantBalance.chain_id == money.ctx.chain_id)
                                  .values(available=MerchantBalance.available - 1))


assert SettlementBatch


class TestSchedules:
    async def test_a_due_schedule_creates_a_batch_of_everything_withdrawable(self, money: Money) -> None:
        from node.settlement.tasks import create_scheduled_settlements

        account = await money.merchant(usdt(80))
        bank_id = await verified_bank_account(money, account)
        async with money.db.unit_of_work() as session:
            schedule = await service.set_schedule(session, account.merchant_id, frequency="DAILY", interval_days=None,
                                                  bank_account_id=bank_id)
            assert schedule["intervalDays"] == 1
            from node.settlement.models import SettlementSchedule

            await session.execute(update(SettlementSchedule).where(
                SettlementSchedule.merchant_id == account.merchant_id)
                .values(next_run_at=datetime.now(UTC) - timedelta(minutes=1)))
        assert await create_scheduled_settlements(money.db, money.ic.settings) >= 1
        assert await create_scheduled_settlements(money.db, money.ic.settings) == 0  # not due again today
        async with money.db.unit_of_work() as session:
            rows = (await session.execute(select(SettlementBatch).where(
                SettlementBatch.merchant_id == account.merchant_id))).scalars().all()
        assert [(int(b.amount), b.status) for b in rows] == [(usdt(80), "REQUESTED")]
