"""Merchant rules: KYC transitions, live mode and the instant-access cap, the demo seed."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from node.config import Settings
from node.merchants import service
from node.merchants.demo import seed_demo
from node.merchants.errors import InstantAccessCapReached, InvalidTransition, LiveModeNotAllowed
from node.resources import Resources
from tests.fixtures.accounts import hmac_headers, in_process_client, unique_email

USDT = 10**18


async def _merchant(session: AsyncSession, settings: Settings, kyc: str) -> service.Merchant:  # type: ignore[name-defined]
    merchant, _ = await service.create_merchant(session, settings, business_name="Cap Test", email=unique_email(),
                                                password=None, name="x", kyc_status=kyc, send_emails=False)
    return merchant


class TestKycTransitions:
    @pytest.mark.parametrize(("start", "target", "ok"), [
        ("PENDING", "INSTANT_ACCESS", True), ("PENDING", "UNDER_REVIEW", True), ("PENDING", "APPROVED", False),
        ("INSTANT_ACCESS", "REJECTED", True), ("INSTANT_ACCESS", "APPROVED", True),
        ("UNDER_REVIEW", "APPROVED", True), ("UNDER_REVIEW", "REJECTED", True),
        ("REJECTED", "UNDER_REVIEW", True), ("REJECTED", "APPROVED", False), ("APPROVED", "REJECTED", False),
    ])
    async def test_table(self, session: AsyncSession, settings: Settings, start: str, target: str,
                         ok: bool) -> None:
        merchant = await _merchant(session, settings, start)
        if ok:
            await service.transition_kyc(session, merchant, target, actor_type="SYSTEM", actor_id=None)
            assert merchant.kyc_status == target
        else:
            with pytest.raises(InvalidTransition):
                await service.transition_kyc(session, merchant, target, actor_type="SYSTEM", actor_id=None)


class TestLiveMode:
    @pytest.mark.parametrize("kyc", ["PENDING", "UNDER_REVIEW", "REJECTED"])
    def test_live_needs_instant_access_or_approval(self, kyc: str) -> None:
        with pytest.raises(LiveModeNotAllowed):
            service.ensure_live_allowed(kyc)
        service.ensure_live_allowed("APPROVED")
        service.ensure_live_allowed("INSTANT_ACCESS")

    async def test_instant_access_cap_is_enforced_atomically(self, session: AsyncSession,
                                                             settings: Settings) -> None:
        merchant = await _merchant(session, settings, "INSTANT_ACCESS")
        await service.reserve_instant_access(session, settings, merchant.id, 4000 * USDT)
        await service.reserve_instant_access(session, settings, merchant.id, 1000 * USDT)
        with pytest.raises(InstantAccessCapReached):
            await service.reserve_instant_access(session, settings, merchant.id, 1)
        approved = await _merchant(session, settings, "APPROVED")
        await service.reserve_instant_access(session, settings, approved.id, 10**6 * USDT)
        pending = await _merchant(session, settings, "PENDING")
        with pytest.raises(LiveModeNotAllowed):
            await service.reserve_instant_access(session, settings, pending.id, USDT)


class TestDemoSeed:
    async def test_seed_is_idempotent_and_its_credentials_work(self, resources: Resources) -> None:
        settings = resources.settings.model_copy(update={"demo_merchant_email": unique_email("demo"),
                                                         "demo_admin_email": unique_email("demoadmin")})
        async with resources.db.unit_of_work() as session:
            first = await seed_demo(session, settings)
        async with resources.db.unit_of_work() as session:
            second = await seed_demo(session, settings)
        assert first.merchant_id == second.merchant_id
        assert first.api_key != second.api_key and second.api_key.startswith("ak_test_")
        key_id, secret = second.api_key.split(".", 1)
        async with in_process_client(resources) as http:  # type: ignore[attr-defined]
            ok = await http.get("/v1/merchants/me", headers=hmac_headers(key_id, secret, "GET", "/v1/merchants/me"))
            assert ok.status_code == 200 and ok.json()["data"]["kycStatus"] == "APPROVED"
            old_id, old_secret = first.api_key.split(".", 1)
            stale = await http.get("/v1/merchants/me",
                                   headers=hmac_headers(old_id, old_secret, "GET", "/v1/merchants/me"))
            assert stale.status_code == 401
            login = await http.post("/v1/admin/auth/login", json={"email": second.admin_email,
                                                                   "password": second.admin_password})
            assert login.status_code == 200 and login.json()["data"]["twoFactorSetupRequired"] is True
            merchant_login = await http.post("/v1/auth/login", json={"email": second.merchant_email,
                                                                     "password": second.merchant_password})
            assert merchant_login.status_code == 200
