"""After a random mix of payments, deposits, sweeps, refunds, withdrawals, settlements and treasury
withdrawals, every balance in the database equals the contract's, to the wei."""

from __future__ import annotations

import random
import uuid

from chain.intents import uuid_to_bytes32
from node.errors import NodeError
from node.exchange import treasury
from node.settlement import service
from node.settlement.audit import run_audit
from tests.fixtures.contracts import OPERATOR, PAYERS
from tests.fixtures.settlement import Money, usdt
from tests.node.settlement.test_settlements import post_rate, verified_bank_account


class TestRandomMix:
    async def test_database_equals_contract_to_the_wei(self, money: Money) -> None:
        rng = random.Random(9)
        chain = money.ic.chain
        post_rate(money)
        accounts = [await money.merchant(usdt(50), payout=PAYERS[5 + i]) for i in range(3)]
        for account in accounts:
            await verified_bank_account(money, account)
        for payer in PAYERS[:4]:
            chain.fund(payer, usdt(10**7))
        token = money.ic.deployment.token
        accepted = refused = 0
        for step in range(40):
            account = rng.choice(accounts)
            key = uuid_to_bytes32(account.merchant_id)
            amount = usdt(rng.randrange(1, 400)) + rng.randrange(0, 10**18)
            action = rng.choice(["pay", "pay", "deposit", "refund", "withdraw", "withdraw", "settle", "treasury"])
            try:
                if action == "pay":
                    chain.pay(rng.choice(PAYERS[:4]), chain.intent(key, amount, fee=amount * 15 // 1000))
                elif action == "deposit":
                    intent = chain.intent(key, amount, fee=amount * 15 // 1000)
                    sent = amount + rng.choice([-amount // 2, 0, amount // 3])
                    chain.transact(rng.choice(PAYERS[:4]), "MockUSDT", "transfer", chain.deposit_address(intent), sent)
                    chain.transact(OPERATOR, "OpenPayGateway", "sweep", intent.as_tuple())
                elif action == "refund":
                    async with money.db.unit_of_work() as session:
                        free = await service.spendable(session, money.ctx, account.merchant_id)
                    if free > 0:
                        chain.transact(OPERATOR, "OpenPayGateway", "refund", uuid_to_bytes32(uuid.uuid4()), key,
                                       token, PAYERS[0], rng.randrange(1, free + 1))
                elif action == "withdraw":
                    async with money.db.unit_of_work() as session:
                        await service.request_withdrawal(session, money.ctx, account.merchant_id, amount,
                                                         idempotency_key=None, actor_type="SYSTEM", actor_id=None)
                elif action == "settle":
                    async with money.db.unit_of_work() as session:
                        await service.request_settlement(session, money.ctx, account.merchant_id, amount=amount,
                                                         bank_account_id=None, idempotency_key=None,
                                                         actor_type="SYSTEM", actor_id=None)
                elif action == "treasury":
                    async with money.db.unit_of_work() as session:
                        await treasury.request_withdrawal(session, money.resources.settings, money.ctx,
                                                          amount=amount // 50, to_address=PAYERS[9],
                                                          exchange=None, admin_id=uuid.uuid4())
                accepted += 1
            except NodeError:
                refused += 1  # over the balance: refused, nothing changed
            if step % 4 == 3:
                await money.run()
            else:
                await money.index()
        await money.run()
        await money.run()
        assert accepted > 20 and refused >= 1
        await money.ic.assert_db_equals_chain(money.db)
        async with money.db.unit_of_work() as session:
            for account in accounts:
                assert await service.spendable(session, money.ctx, account.merchant_id) == chain.merchant_balance(
                    uuid_to_bytes32(account.merchant_id)), "a reservation was left behind"
        assert (await run_audit(money.db, money.rpc, money.ctx, chain.gateway)).differences == []
