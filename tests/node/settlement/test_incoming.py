"""The balance's ``incoming``: money at unswept deposit addresses (final or not) and gateway credits
not final yet, per merchant and token, in USDT and LKR, from indexed rows only. It moves from
``unswept`` to ``unconfirmed`` exactly when a sweep is indexed, comes back if a reorg undoes the
sweep, and leaves for ``available`` when the sweep is final. Anvil + PostgreSQL, the indexer
in-process with two confirmations and the deposit watch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest_asyncio

from api.app import create_app
from chain.client import RpcClient
from indexer.follower import Follower
from node.auth.principal import MerchantPrincipal
from node.config import Settings
from node.exchange import rates
from node.money import format_units
from node.payments import service as payments
from node.payments.models import Payment
from node.payments.schemas import PaymentRequest
from node.payments.service import intent_of
from node.resources import Resources
from node.settlement import service
from node.settlement.chainctx import GatewayContext, gateway_context
from node.settlement.service import Incoming
from tests.fixtures.accounts import MerchantAccount, make_merchant
from tests.fixtures.contracts import OPERATOR, PAYERS
from tests.fixtures.indexing import IndexedChain
from tests.fixtures.payments import payments_follower

CONFIRMATIONS = 2


@dataclass
class DepositChain:
    """An indexed chain where blocks are final two blocks behind the head."""

    ic: IndexedChain
    resources: Resources
    settings: Settings
    follower: Follower

    @property
    def ctx(self) -> GatewayContext:
        return gateway_context(self.settings)

    async def index(self) -> None:
        while await self.follower.step():
            pass

    async def confirm(self) -> None:
        """Mines until everything so far is final, and indexes it."""
        for _ in range(CONFIRMATIONS):
            self.ic.chain.mine()
        await self.index()

    async def payment(self, account: MerchantAccount, amount: str) -> Payment:
        principal = MerchantPrincipal(merchant_id=account.merchant_id, user_id=None, role=None, branch_id=None,
                                      mode="test", api_key_id=None, permissions=frozenset({"payments:write"}),
                                      kyc_status="APPROVED")
        async with self.resources.db.unit_of_work() as session:
            await rates.record(session, "LKR", {"USDT": Decimal("301.37")}, "COINGECKO")
        async with self.resources.db.unit_of_work() as session:
            payment = await payments.create(session, self.settings, principal, PaymentRequest(amount=Decimal(amount)))
        assert payment.fee_units > 0  # the sweep's fee is part of what incoming must predict
        return payment

    def transfer(self, payment: Payment, amount: int, payer: str = PAYERS[3]) -> None:
        chain = self.ic.chain
        chain.transact(payer, "MockUSDT", "faucet", payer, amount)
        chain.transact(payer, "MockUSDT", "transfer", payment.deposit_address, amount)

    def sweep(self, *batch: Payment) -> None:
        self.ic.chain.transact(OPERATOR, "OpenPayGateway", "sweepBatch", [intent_of(p).as_tuple() for p in batch])

    def pay(self, payment: Payment, payer: str = PAYERS[4]) -> None:
        """``pay`` from a payer already funded and approved (one block)."""
        self.ic.chain.pay(payer, intent_of(payment), bytes(payment.signature))

    async def incoming(self, account: MerchantAccount) -> Incoming:
        async with self.resources.db.unit_of_work() as session:
            return await service.incoming(session, self.ctx, account.merchant_id)

    async def available(self, account: MerchantAccount) -> int:
        async with self.resources.db.unit_of_work() as session:
            return await service.spendable(session, self.ctx, account.merchant_id)


@pytest_asyncio.fixture
async def deposits(indexed_chain: IndexedChain, resources: Resources) -> AsyncIterator[DepositChain]:
    settings = indexed_chain.settings.model_copy(update={
        "indexer_confirmations": CONFIRMATIONS, "payment_cache_ttl_s": 0.0})
    rpc = RpcClient(indexed_chain.anvil.url)
    follower = payments_follower(indexed_chain, settings, resources, rpc)
    harness = DepositChain(indexed_chain, resources, settings, follower)
    await harness.index()
    yield harness
    await rpc.aclose()


def swept_net(received: int, p: Payment) -> int:
    """What the gateway credits for ``received`` at the deposit address (the contract's fee rule)."""
    return received - received * p.fee_units // int(p.amount_units)


def cents(amount: int, p: Payment) -> int:
    return amount * int(p.rate_fixed) // 10**24


class TestUnsweptDeposits:
    async def test_incoming_moves_to_unconfirmed_when_the_sweep_is_indexed_and_to_available_when_final(
        self, deposits: DepositChain, resources: Resources,
    ) -> None:
        account, other = await make_merchant(resources), await make_merchant(resources)
        p = await deposits.payment(account, "40")
        sent = int(p.amount_units) * 3 // 5  # underpaid: the fee is charged in proportion
        net = swept_net(sent, p)
        deposits.transfer(p, sent)
        await deposits.index()
        assert await deposits.incoming(account) == Incoming(net, cents(net, p), 0, 0)  # seen, not final
        await deposits.confirm()
        assert await deposits.incoming(account) == Incoming(net, cents(net, p), 0, 0)  # final, not swept
        assert await deposits.incoming(other) == Incoming()
        deposits.sweep(p)
        await deposits.index()
        assert await deposits.incoming(account) == Incoming(0, 0, net, cents(net, p))
        assert await deposits.available(account) == 0
        await deposits.confirm()
        assert await deposits.incoming(account) == Incoming()
        assert await deposits.available(account) == net  # exactly what incoming said would come

    async def test_a_reorg_that_undoes_the_sweep_brings_the_deposit_back(
        self, deposits: DepositChain, resources: Resources,
    ) -> None:
        account = await make_merchant(resources)
        p = await deposits.payment(account, "25")
        deposits.transfer(p, int(p.amount_units))
        await deposits.confirm()
        net = swept_net(int(p.amount_units), p)
        chain = deposits.ic.chain
        snapshot = chain.rpc_call("evm_snapshot")
        deposits.sweep(p)
        await deposits.index()
        assert await deposits.incoming(account) == Incoming(0, 0, net, cents(net, p))
        chain.rpc_call("evm_revert", [snapshot])
        # a different, longer chain without the sweep
        chain.transact(PAYERS[7], "MockUSDT", "faucet", PAYERS[7], 1)
        chain.mine()
        await deposits.index()
        assert await deposits.incoming(account) == Incoming(net, cents(net, p), 0, 0)
        assert await deposits.available(account) == 0
        deposits.sweep(p)
        await deposits.confirm()
        assert await deposits.incoming(account) == Incoming()
        assert await deposits.available(account) == net

    async def test_paid_by_pay_is_unconfirmed_never_unswept_and_merchants_are_apart(
        self, deposits: DepositChain, resources: Resources,
    ) -> None:
        account, other = await make_merchant(resources), await make_merchant(resources)
        by_pay = await deposits.payment(account, "10")
        by_transfer = await deposits.payment(other, "12")
        deposits.ic.chain.fund(PAYERS[4], int(by_pay.amount_units))
        deposits.transfer(by_transfer, int(by_transfer.amount_units))
        deposits.pay(by_pay)  # last: not final yet
        await deposits.index()
        net_pay = int(by_pay.amount_units) - by_pay.fee_units
        net_transfer = swept_net(int(by_transfer.amount_units), by_transfer)
        assert await deposits.incoming(account) == Incoming(0, 0, net_pay, cents(net_pay, by_pay))
        assert await deposits.incoming(other) == Incoming(net_transfer, cents(net_transfer, by_transfer), 0, 0)
        await deposits.confirm()
        assert await deposits.incoming(account) == Incoming()
        assert await deposits.available(account) == net_pay
        assert await deposits.incoming(other) == Incoming(net_transfer, cents(net_transfer, by_transfer), 0, 0)


class TestBalanceRoute:
    async def test_the_balance_shows_incoming_in_usdt_and_lkr(self, deposits: DepositChain,
                                                              resources: Resources) -> None:
        account = await make_merchant(resources)
        p = await deposits.payment(account, "20")
        deposits.transfer(p, int(p.amount_units))
        await deposits.confirm()
        net = swept_net(int(p.amount_units), p)
        app = create_app(deposits.settings, resources)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node", timeout=30) as http:
            reply = await http.get("/v1/settlements/balance", headers=account.auth_headers)
        assert reply.status_code == 200, reply.text
        data: dict[str, Any] = reply.json()["data"]
        lkr = str(Decimal(cents(net, p)).scaleb(-2))
        assert data["incoming"] == format_units(net) and data["incomingLkr"] == lkr
        assert data["incomingDetail"]["unswept"] == {"amount": data["incoming"], "lkr": lkr}
        assert data["incomingDetail"]["unconfirmed"] == {"amount": "0", "lkr": "0.00"}
        assert data["available"] == "0"
