"""Settlement and treasury routes on the real app (in process), on an indexed chain of their own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import func, select

from api.app import create_app
from node.bus import OutboxMessage
from node.settlement.models import Withdrawal
from tests.fixtures.accounts import make_admin
from tests.fixtures.exchanges import KEY, PASSPHRASE, SECRET, BinanceServer
from tests.fixtures.settlement import Money, usdt


@pytest_asyncio.fixture
async def http(money: Money) -> AsyncIterator[httpx.AsyncClient]:
    exchange = BinanceServer()
    await exchange.start()
    settings = money.ic.settings.model_copy(update={
        "exchange_credentials": {"binance": {"apiKey": KEY, "secret": SECRET, "password": PASSPHRASE}},
        "exchange_urls": {"binance": exchange.url}})
    app = create_app(settings, money.resources)
    transport = httpx.ASGITransport(app=app, client=(f"10.9.{uuid.uuid4().int % 250}.7", 40000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://node", timeout=30) as client:
        yield client
    await exchange.stop()


def error(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return str(body["error"]["code"])


class TestMerchantWithdrawals:
    async def test_request_is_idempotent_sent_and_completed(self, money: Money, http: httpx.AsyncClient) -> None:
        account = await money.merchant(usdt(100))
        headers = {**account.auth_headers, "Idempotency-Key": "w-1"}
        first = await http.post("/v1/withdrawals", json={"amount": "12.5"}, headers=headers)
        again = await http.post("/v1/withdrawals", json={"amount": "12.5"}, headers=headers)
        assert first.status_code == 201 and again.status_code == 200
        assert first.json()["data"]["id"] == again.json()["data"]["id"]
        assert first.json()["data"]["status"] == "APPROVED"
        balance = (await http.get("/v1/settlements/balance", headers=account.auth_headers)).json()["data"]
        assert balance["available"] == "100" and balance["reserved"] == "12.5" and balance["withdrawable"] == "87.5"
        await money.run()
        wid = first.json()["data"]["id"]
        done = (await http.get(f"/v1/withdrawals/{wid}", headers=account.auth_headers)).json()["data"]
        assert done["status"] == "COMPLETED" and done["txHash"]
        ledger = (await http.get("/v1/settlements/ledger?perPage=1", headers=account.auth_headers)).json()
        assert ledger["meta"]["total"] == 2 and ledger["data"][0]["kind"] == "WITHDRAWAL"
        assert ledger["data"][0]["amount"] == "-12.5" and ledger["data"][0]["txHash"] == done["txHash"]
        csv_text = (await http.get("/v1/settlements/ledger.csv", headers=account.auth_headers)).text
        assert csv_text.splitlines()[0].startswith("blockNumber,") and len(csv_text.splitlines()) == 3

    async def test_bad_requests_get_clear_codes_and_create_nothing(self, money: Money,
                                                                   http: httpx.AsyncClient) -> None:
        account = await money.merchant(usdt(100))
        h = account.auth_headers
        cases = [({"amount": "abc"}, 400, "INVALID_AMOUNT"), ({"amount": "-5"}, 400, "INVALID_AMOUNT"),
                 ({"amount": "1e3"}, 400, "INVALID_AMOUNT"), ({"amount": 5}, 400, "VALIDATION_ERROR"),
                 ({}, 400, "VALIDATION_ERROR"), ({"amount": "5"}, 400, "BELOW_MINIMUM_WITHDRAWAL"),
                 ({"amount": "100.000000000000000001"}, 409, "INSUFFICIENT_BALANCE"),
                 ({"amount": "20", "extra": 1}, 400, "VALIDATION_ERROR")]
        for body, status, code in cases:
            response = await http.post("/v1/withdrawals", json=body, headers=h)
            assert (response.status_code, error(response)) == (status, code), body
        async with money.db.unit_of_work() as session:
            count = (await session.execute(select(func.count()).select_from(Withdrawal).where(
                Withdrawal.merchant_id == account.merchant_id))).scalar_one()
        assert count == 0

    async def test_an_admin_approves_above_the_threshold_and_a_viewer_cannot(
        self, money: Money, http: httpx.AsyncClient,
    ) -> None:
        account = await money.merchant(usdt(5000))
        created = await http.post("/v1/withdrawals", json={"amount": "1500"}, headers=account.auth_headers)
        wid = created.json()["data"]["id"]
        assert created.json()["data"]["status"] == "REQUESTED"
        viewer, admin = await make_admin(money.resources, "VIEWER"), await make_admin(money.resources, "ADMIN")
        queue = await http.get("/v1/admin/withdrawals?status=REQUESTED&perPage=200", headers=viewer.auth_headers)
        assert wid in [w["id"] for w in queue.json()["data"]]
        refused = await http.post(f"/v1/admin/withdrawals/{wid}/approve", headers=viewer.auth_headers)
        assert refused.status_code == 403
        approved = await http.post(f"/v1/admin/withdrawals/{wid}/approve", headers=admin.auth_headers)
        assert approved.status_code == 200 and approved.json()["data"]["status"] == "APPROVED"
        again = await http.post(f"/v1/admin/withdrawals/{wid}/approve", headers=admin.auth_headers)
        assert (again.status_code, error(again)) == (409, "INVALID_TRANSITION")
        async with money.db.unit_of_work() as session:
            kinds = (await session.execute(select(OutboxMessage.type).where(OutboxMessage.key == wid))).scalars().all()
        assert "withdrawal.approved" in kinds


class TestSettlementRoutes:
    async def test_bank_account_settlement_statement_and_payout(self, money: Money, http: httpx.AsyncClient) -> None:
        from tests.node.settlement.test_settlements import post_rate

        account = await money.merchant(usdt(300))
        admin = await make_admin(money.resources, "SUPER_ADMIN")
        h = account.auth_headers
        bank = await http.post("/v1/bank-accounts", json={"bankName": "HNB", "accountName": "Shop",
                                                          "accountNumber": "0012-3456"}, headers=h)
        assert bank.status_code == 201 and bank.json()["data"]["status"] == "PENDING"
        refused = await http.post("/v1/settlements", json={"amount": "50"}, headers=h)
        assert (refused.status_code, error(refused)) == (409, "BANK_ACCOUNT_NOT_VERIFIED")
        bank_id = bank.json()["data"]["id"]
        verified = await http.post(f"/v1/admin/bank-accounts/{bank_id}/verify", headers=admin.auth_headers)
        assert verified.json()["data"]["status"] == "VERIFIED"
        schedule = await http.put("/v1/settlements/schedule", json={"frequency": "WEEKLY", "bankAccountId": bank_id},
                                  headers=h)
        assert schedule.json()["data"]["intervalDays"] == 7
        post_rate(money)
        created = await http.post("/v1/settlements", json={"amount": "50"}, headers={**h, "Idempotency-Key": "s"})
        assert created.status_code == 201
        sid = created.json()["data"]["id"]
        await money.run()
        settled = (await http.get(f"/v1/settlements/{sid}", headers=h)).json()["data"]
        assert settled["status"] == "SETTLED_ON_CHAIN" and settled["fiatAmount"] == "15006.17"
        paid = await http.post(f"/v1/admin/settlements/{sid}/paid", headers=admin.auth_headers,
                               json={"bankReference": "HNB-991", "paidOn": "2026-11-25"})
        assert paid.json()["data"]["status"] == "PAID"
        csv_text = (await http.get(f"/v1/settlements/{sid}/statement.csv", headers=h)).text
        assert "HNB-991" in csv_text and "15006.17" in csv_text
        page = await http.get(f"/v1/settlements/{sid}/statement.html", headers=h)
        assert page.status_code == 200 and "Settlement statement" in page.text and "HNB 0012-3456" in page.text

    async def test_the_payout_address_is_for_portal_users_with_two_factor(
        self, money: Money, http: httpx.AsyncClient,
    ) -> None:
        account = await money.merchant(payout=None)
        path = "/v1/payout-address"
        body = '{"address": "0x' + "ab" * 20 + '", "code": "123456"}'
        by_key = await http.put(path, content=body, headers={
            **account.signed("PUT", path, body, mode="live"), "content-type": "application/json"})
        assert by_key.status_code == 403
        no_2fa = await http.put(path, content=body, headers={**account.auth_headers,
                                                             "content-type": "application/json"})
        assert (no_2fa.status_code, error(no_2fa)) == (403, "TWO_FACTOR_REQUIRED")
        bad = await http.put(path, json={"address": "0x1234", "code": "123456"}, headers=account.auth_headers)
        assert (bad.status_code, error(bad)) == (400, "INVALID_ADDRESS")


class TestTreasuryRoutes:
    async def test_treasury_balance_and_an_exchange_overview(self, money: Money, http: httpx.AsyncClient) -> None:
        await money.merchant(usdt(100))
        admin = await make_admin(money.resources, "SUPER_ADMIN")
        treasury = (await http.get("/v1/admin/treasury", headers=admin.auth_headers)).json()["data"]
        assert treasury["chainId"] == money.ctx.chain_id
        overview = await http.get("/v1/admin/treasury/exchanges/binance", headers=admin.auth_headers)
        data = overview.json()["data"]
        assert data["balances"]["USDT"]["total"] == "1000" and data["ticker"]["last"] == "0.9995"
        unknown = await http.get("/v1/admin/treasury/exchanges/ftx", headers=admin.auth_headers)
        assert unknown.status_code == 404
        failed = await http.post("/v1/admin/treasury/exchanges/binance/sell", json={"amount": "5000"},
                                 headers=admin.auth_headers)
        assert (failed.status_code, error(failed)) == (409, "EXCHANGE_INSUFFICIENT_BALANCE")
        sold = await http.post("/v1/admin/treasury/exchanges/binance/sell", json={"amount": "100"},
                               headers=admin.auth_headers)
        assert sold.status_code == 201 and sold.json()["data"]["status"] == "CLOSED"
