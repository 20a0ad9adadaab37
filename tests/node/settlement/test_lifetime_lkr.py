"""Lifetime LKR of refunds and withdrawals, whose events carry no rate: a refund at the rate locked
on the payment it refunds (the oracle's at its block when the node does not know the payment), a
withdrawal at the oracle answer in effect at its block. On the balance and in the ledger CSV.
Anvil + PostgreSQL, the indexer in-process."""

from __future__ import annotations

import csv
import importlib
import io
import uuid
from decimal import Decimal

import httpx
from sqlalchemy import text, update

from api.app import create_app
from chain.intents import uuid_to_bytes32
from node.auth.principal import MerchantPrincipal
from node.exchange import rates
from node.payments import service as payments
from node.payments.models import Payment
from node.payments.schemas import PaymentRequest
from node.payments.service import intent_of
from node.settlement import repository as repo
from node.settlement import service
from node.settlement.models import LedgerEntry
from tests.fixtures.accounts import MerchantAccount
from tests.fixtures.contracts import OPERATOR, PAYERS, REPORTER
from tests.fixtures.settlement import Money, usdt

RATE_1 = 305 * 10**8 + 25_000_000  # 305.25 LKR per USDT on the oracle
RATE_2 = 298 * 10**8 + 1  # 298.00000001


def post_rate(money: Money, answer: int) -> None:
    money.ic.chain.mine(seconds=5)  # each answer newer than the last
    money.ic.chain.transact(REPORTER, "OpenPayRateOracle", "postAnswer", answer, money.ic.chain.now())


def lkr(amount: int, rate: int) -> int:
    return amount * rate // 10**24


async def paid_payment(money: Money, account: MerchantAccount, amount: str) -> Payment:
    """A payment created by the payments service at a locked rate of 301.37, paid with ``pay``."""
    settings = money.ic.settings.model_copy(update={"payment_cache_ttl_s": 0.0})
    principal = MerchantPrincipal(merchant_id=account.merchant_id, user_id=None, role=None, branch_id=None,
                                  mode="test", api_key_id=None, permissions=frozenset({"payments:write"}),
                                  kyc_status="APPROVED")
    async with money.db.unit_of_work() as session:
        await rates.record(session, "LKR", {"USDT": Decimal("301.37")}, "COINGECKO")
    async with money.db.unit_of_work() as session:
        payment = await payments.create(session, settings, principal, PaymentRequest(amount=Decimal(amount)))
    money.ic.chain.fund(PAYERS[2], int(payment.amount_units))
    money.ic.chain.pay(PAYERS[2], intent_of(payment), bytes(payment.signature))
    await money.index()
    return payment


async def ledger(money: Money, account: MerchantAccount, kind: str) -> list[LedgerEntry]:
    async with money.db.unit_of_work() as session:
        rows, _ = await repo.ledger_page(session, money.ctx.chain_id, uuid_to_bytes32(account.merchant_id),
                                         offset=0, limit=100)
    return sorted((r for r in rows if r.kind == kind), key=lambda r: (r.block_number, r.log_index))


class TestOutflowsInLkr:
    async def test_refunds_at_the_payments_rate_and_withdrawals_at_the_oracles(self, money: Money) -> None:
        account = await money.merchant()
        key, token, chain = uuid_to_bytes32(account.merchant_id), money.ctx.token, money.ic.chain
        payment = await paid_payment(money, account, "50")
        locked = int(payment.rate_fixed)
        assert locked == 30_137_000_000
        post_rate(money, RATE_1)
        chain.transact(OPERATOR, "OpenPayGateway", "withdraw", key, token, usdt(10))
        post_rate(money, RATE_2)
        chain.transact(OPERATOR, "OpenPayGateway", "withdraw", key, token, usdt("3.333333333333333333"))
        chain.transact(OPERATOR, "OpenPayGateway", "refund", bytes(payment.onchain_id), key, token, PAYERS[2],
                       usdt(7))
        unknown = uuid.uuid4().bytes.rjust(32, b"\0")  # refunded by hand, not one of the node's payments
        chain.transact(OPERATOR, "OpenPayGateway", "refund", unknown, key, token, PAYERS[2], usdt(2))
        await money.index()

        withdrawals = await ledger(money, account, "WITHDRAWAL")
        assert [(w.rate, w.fiat_cents) for w in withdrawals] == [
            (RATE_1, -lkr(usdt(10), RATE_1)), (RATE_2, -lkr(usdt("3.333333333333333333"), RATE_2))]
        refunds = await ledger(money, account, "REFUND")
        assert [(r.rate, r.fiat_cents) for r in refunds] == [
            (locked, -lkr(usdt(7), locked)), (RATE_2, -lkr(usdt(2), RATE_2))]

        async with money.db.unit_of_work() as session:
            balance = await service.balance(session, money.ctx, account.merchant_id)
        withdrawn = lkr(usdt(10), RATE_1) + lkr(usdt("3.333333333333333333"), RATE_2)
        refunded = lkr(usdt(7), locked) + lkr(usdt(2), RATE_2)
        assert balance["lifetimeLkr"]["withdrawn"] == str(Decimal(withdrawn).scaleb(-2))
        assert balance["lifetimeLkr"]["refunded"] == str(Decimal(refunded).scaleb(-2))
        assert balance["lifetimeLkr"]["withdrawn"] == "4045.83"  # 3,052.50 at 305.25 + 993.33 at 298.00000001
        await money.ic.assert_db_equals_chain(money.db)

    async def test_the_balance_route_and_the_ledger_csv_carry_them(self, money: Money) -> None:
        account = await money.merchant()
        key, token, chain = uuid_to_bytes32(account.merchant_id), money.ctx.token, money.ic.chain
        payment = await paid_payment(money, account, "20")
        post_rate(money, RATE_1)
        chain.transact(OPERATOR, "OpenPayGateway", "withdraw", key, token, usdt(4))
        chain.transact(OPERATOR, "OpenPayGateway", "refund", bytes(payment.onchain_id), key, token, PAYERS[2],
                       usdt(5))
        await money.index()
        transport = httpx.ASGITransport(app=create_app(money.ic.settings, money.resources))
        async with httpx.AsyncClient(transport=transport, base_url="http://node", timeout=30) as http:
            balance = (await http.get("/v1/settlements/balance", headers=account.auth_headers)).json()["data"]
            text = (await http.get("/v1/settlements/ledger.csv", headers=account.auth_headers)).text
        refund_lkr = Decimal(lkr(usdt(5), int(payment.rate_fixed))).scaleb(-2)
        assert balance["lifetimeLkr"]["withdrawn"] == "1221.00"  # 4 x 305.25
        assert balance["lifetimeLkr"]["refunded"] == str(refund_lkr)
        assert balance["lifetime"]["withdrawn"] == "4" and balance["lifetime"]["refunded"] == "5"
        rows = {r["kind"]: r for r in csv.DictReader(io.StringIO(text))}
        assert (rows["WITHDRAWAL"]["rate"], rows["WITHDRAWAL"]["amountLkr"]) == ("305.25000000", "-1221.00")
        assert (rows["REFUND"]["rate"], rows["REFUND"]["amountLkr"]) == ("301.37000000", f"-{refund_lkr}")


class TestMigrationPricesOldRows:
    async def test_rows_stored_before_pricing_get_the_same_prices(self, money: Money) -> None:
        account = await money.merchant()
        key, token, chain = uuid_to_bytes32(account.merchant_id), money.ctx.token, money.ic.chain
        payment = await paid_payment(money, account, "30")
        chain.transact(OPERATOR, "OpenPayGateway", "withdraw", key, token, usdt(1))  # before any answer
        post_rate(money, RATE_1)
        post_rate(money, RATE_2)
        chain.transact(OPERATOR, "OpenPayGateway", "withdraw", key, token, usdt("2.5"))
        chain.transact(OPERATOR, "OpenPayGateway", "refund", bytes(payment.onchain_id), key, token, PAYERS[2],
                       usdt(6))
        chain.transact(OPERATOR, "OpenPayGateway", "refund", uuid.uuid4().bytes.rjust(32, b"\0"), key, token,
                       PAYERS[2], usdt(1))
        await money.index()

        async def prices() -> list[tuple[str, int | None, int | None]]:
            rows = [*(await ledger(money, account, "WITHDRAWAL")), *(await ledger(money, account, "REFUND"))]
            return [(r.kind, r.rate, r.fiat_cents) for r in rows]

        indexed = await prices()
        assert indexed[0] == ("WITHDRAWAL", None, None)  # no oracle answer yet: no LKR
        assert [rate for _, rate, _ in indexed[1:]] == [RATE_2, int(payment.rate_fixed), RATE_2]
        migration = importlib.import_module("node.migrations.versions.20261125_settlement_0003_price_outflows")
        async with money.db.unit_of_work() as session:
            await session.execute(update(LedgerEntry).where(
                LedgerEntry.chain_id == money.ctx.chain_id, LedgerEntry.kind.in_(("REFUND", "WITHDRAWAL")))
                .values(rate=None, fiat_cents=None))
        assert {(rate, cents) for _, rate, cents in await prices()} == {(None, None)}
        async with money.db.unit_of_work() as session:
            for statement in migration.PRICE_OUTFLOWS:
                await session.execute(text(statement), {"chain_id": money.ctx.chain_id})
        assert await prices() == indexed
