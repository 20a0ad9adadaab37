"""KYC end to end (profile, submission, directors through the public form, documents behind
signed links) and the admin side (mandatory 2FA, forced password change, review, suspension,
settings, legal documents)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pyotp
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from node.merchants.models import Director, Document
from node.resources import Resources
from tests.fixtures.accounts import (
    PASSWORD,
    AdminAccount,
    MerchantAccount,
    add_user,
    emails_to,
    in_process_client,
    make_admin,
    make_merchant,
    unique_email,
)
from tests.fixtures.ownership import PNG

PROFILE = {"phone": "+94112345678", "addressLine1": "12 Galle Road", "city": "Colombo",
           "bankName": "Commercial Bank", "bankAccountNumber": "1234567890"}


@pytest_asyncio.fixture
async def http(resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_client(resources) as client:  # type: ignore[attr-defined]
        yield client


async def _pending(resources: Resources, http: httpx.AsyncClient) -> MerchantAccount:
    account = await make_merchant(resources, kyc="PENDING")
    reply = await http.patch("/v1/merchants/me", headers=account.auth_headers, json=PROFILE)
    assert reply.status_code == 200, reply.text
    for doc in (await http.get("/v1/legal-documents/current", headers=account.auth_headers)).json()["data"]:
        await http.post("/v1/legal-documents/accept", headers=account.auth_headers, json={"documentId": doc["id"]})
    return account


async def _director(http: httpx.AsyncClient, resources: Resources, account: MerchantAccount) -> tuple[str, str]:
    email = unique_email("director")
    reply = await http.post("/v1/merchants/me/directors", headers=account.auth_headers,
                            json={"name": "Sunil Director", "email": email})
    assert reply.status_code == 201, reply.text
    [message] = await emails_to(resources, email, "director.verification")
    return reply.json()["data"]["id"], message["context"]["token"]  # type: ignore[index]


def _form(**over: str) -> dict[str, str]:
    return {"fullName": "Sunil Perera", "dateOfBirth": "1980-02-03", "idNumber": "801234567V",
            "phone": "+94770000001", "address": "1 Lake Rd, Kandy", "consent": "true", **over}


class TestKycFlow:
    async def test_submit_needs_details_then_gives_instant_access_and_emails(
            self, http: httpx.AsyncClient, resources: Resources, platform_admin: AdminAccount) -> None:
        bare = await make_merchant(resources, kyc="PENDING")
        incomplete = await http.post("/v1/merchants/me/kyc/submit", headers=bare.auth_headers)
        assert incomplete.status_code == 400 and incomplete.json()["error"]["code"] == "KYC_INCOMPLETE"
        account = await _pending(resources, http)
        reply = await http.post("/v1/merchants/me/kyc/submit", headers=account.auth_headers)
        assert reply.status_code == 200 and reply.json()["data"]["kycStatus"] == "INSTANT_ACCESS"
        assert await emails_to(resources, account.email, "kyc.submitted")
        assert await emails_to(resources, platform_admin.email, "kyc.admin_review_needed")
        # the original's PUT /v1/merchants/{id} {submitKyc} moves INSTANT_ACCESS on to review
        again = await http.put(f"/v1/merchants/{account.merchant_id}", headers=account.auth_headers,
                               json={"submitKyc": True})
        assert again.status_code == 200
        me = await http.get("/v1/merchants/me", headers=account.auth_headers)
        assert me.json()["data"]["kycStatus"] == "UNDER_REVIEW"

    async def test_directors_verify_once_through_the_public_form(self, http: httpx.AsyncClient,
                                                                 resources: Resources) -> None:
        account = await _pending(resources, http)
        director_id, token = await _director(http, resources, account)
        info = await http.get(f"/v1/public/directors/verify/{token}")
        assert info.status_code == 200 and info.json()["data"]["directorName"] == "Sunil Director"
        no_consent = await http.post(f"/v1/public/directors/verify/{token}", data=_form(consent="false"),
                                     files={"document": ("id.png", PNG, "image/png")})
        assert no_consent.status_code == 400
        html = await http.post(f"/v1/public/directors/verify/{token}", data=_form(),
                               files={"document": ("id.png", b"<html>not an image</html>", "image/png")})
        assert html.status_code == 400 and html.json()["error"]["code"] == "UNSUPPORTED_FILE_TYPE"
        ok = await http.post(f"/v1/public/directors/verify/{token}", data=_form(),
                             files={"document": ("id.png", PNG, "image/png")})
        assert ok.status_code == 200, ok.text
        reused = await http.post(f"/v1/public/directors/verify/{token}", data=_form(),
                                 files={"document": ("id.png", PNG, "image/png")})
        assert reused.status_code == 400 and reused.json()["error"]["code"] == "INVALID_TOKEN"
        listed = await http.get("/v1/merchants/me/directors", headers=account.auth_headers)
        [director] = listed.json()["data"]
        assert director["id"] == director_id and director["status"] == "VERIFIED"
        assert await emails_to(resources, account.email, "director.verified")

    async def test_at_most_ten_directors(self, http: httpx.AsyncClient, resources: Resources) -> None:
        account = await _pending(resources, http)
        for i in range(10):
            reply = await http.post("/v1/merchants/me/directors", headers=account.auth_headers,
                                    json={"name": f"D{i}", "email": unique_email("d")})
            assert reply.status_code == 201
        eleventh = await http.post("/v1/merchants/me/directors", headers=account.auth_headers,
                                   json={"name": "D11", "email": unique_email("d")})
        assert eleventh.status_code == 400 and eleventh.json()["error"]["code"] == "TOO_MANY_DIRECTORS"
        async with resources.db.unit_of_work() as session:
            count = await session.scalar(select(func.count()).select_from(Director)
                                         .where(Director.merchant_id == account.merchant_id))
        assert count == 10

    async def test_documents_are_sniffed_private_and_served_by_short_signed_links(
            self, http: httpx.AsyncClient, resources: Resources, other_merchant_account: MerchantAccount,
            platform_admin: AdminAccount) -> None:
        account = await _pending(resources, http)
        fake = await http.post("/v1/uploads", headers=account.auth_headers, data={"category": "other"},
                               files={"file": ("statement.pdf", b"#!/bin/sh\nrm -rf /", "application/pdf")})
        assert fake.status_code == 400 and fake.json()["error"]["code"] == "UNSUPPORTED_FILE_TYPE"
        bad_category = await http.post("/v1/uploads", headers=account.auth_headers, data={"category": "selfie"},
                                       files={"file": ("a.png", PNG, "image/png")})
        assert bad_category.status_code == 400
        reply = await http.post("/v1/uploads", headers=account.auth_headers, data={"category": "bank_statement"},
                                files={"file": ("logo.jpg", PNG, "image/jpeg")})
        assert reply.status_code == 201, reply.text
        document = reply.json()["data"]
        assert document["contentType"] == "image/png"  # from the bytes, not the name or header
        link = await http.get(f"/v1/documents/{document['id']}/link", headers=account.auth_headers)
        url = link.json()["data"]["url"]
        download = await http.get(url.split("8080", 1)[-1] if "8080" in url else url)
        assert download.status_code == 200 and download.content == PNG
        assert download.headers["x-content-type-options"] == "nosniff"
        # another merchant cannot get a link; a forged token is refused
        other = await http.get(f"/v1/documents/{document['id']}/link", headers=other_merchant_account.auth_headers)
        assert other.status_code == 404
        forged = await http.get("/v1/documents/download", params={"token": "x.y.z"})
        assert forged.status_code == 401
        # admins can see it too
        admin_link = await http.get(f"/v1/admin/merchants/{account.merchant_id}/documents/{document['id']}/link",
                                    headers=platform_admin.auth_headers)
        assert admin_link.status_code == 200

    async def test_a_manager_cannot_upload_or_submit(self, http: httpx.AsyncClient, resources: Resources) -> None:
        account = await _pending(resources, http)
        manager = await add_user(resources, account, role="MANAGER")
        async with resources.db.unit_of_work() as session:
            before = await session.scalar(select(func.count()).select_from(Document))
        reply = await http.post("/v1/uploads", headers=manager.auth_headers, data={"category": "other"},
                                files={"file": ("a.png", PNG, "image/png")})
        assert reply.status_code == 403
        assert (await http.post("/v1/merchants/me/kyc/submit", headers=manager.auth_headers)).status_code == 403
        async with resources.db.unit_of_work() as session:
            assert await session.scalar(select(func.count()).select_from(Document)) == before


class TestAdminReview:
    async def test_approval_needs_verified_directors_unless_forced_with_a_reason(
            self, http: httpx.AsyncClient, resources: Resources, platform_admin: AdminAccount) -> None:
        account = await _pending(resources, http)
        await _director(http, resources, account)
        await http.post("/v1/merchants/me/kyc/submit", headers=account.auth_headers)
        url = f"/v1/admin/merchants/{account.merchant_id}/approve"
        refused = await http.post(url, headers=platform_admin.auth_headers, json={})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "DIRECTORS_NOT_VERIFIED"
        no_reason = await http.post(url, headers=platform_admin.auth_headers, json={"force": True})
        assert no_reason.status_code == 400
        forced = await http.post(url, headers=platform_admin.auth_headers,
                                 json={"force": True, "forceReason": "verified in person"})
        assert forced.status_code == 200 and forced.json()["data"]["kycStatus"] == "APPROVED"
        log = await http.get("/v1/admin/audit-logs", headers=platform_admin.auth_headers,
                             params={"merchantId": str(account.merchant_id), "action": "kyc.approved"})
        [entry] = log.json()["data"]
        assert entry["details"]["forced"] is True and entry["details"]["forceReason"] == "verified in person"
        assert entry["actorId"] == str(platform_admin.admin_id)

    async def test_instant_access_can_be_rejected_and_rejected_can_resubmit(
            self, http: httpx.AsyncClient, resources: Resources, platform_admin: AdminAccount) -> None:
        account = await _pending(resources, http)
        await http.post("/v1/merchants/me/kyc/submit", headers=account.auth_headers)
        reject = await http.post(f"/v1/admin/merchants/{account.merchant_id}/reject",
                                 headers=platform_admin.auth_headers, json={"reason": "blurry documents"})
        assert reject.status_code == 200 and reject.json()["data"]["kycStatus"] == "REJECTED"
        assert await emails_to(resources, account.email, "kyc.rejected")
        again = await http.post("/v1/merchants/me/kyc/submit", headers=account.auth_headers)
        assert again.json()["data"]["kycStatus"] == "UNDER_REVIEW"

    async def test_approved_is_final(self, http: httpx.AsyncClient, resources: Resources,
                                     platform_admin: AdminAccount) -> None:
        account = await make_merchant(resources, kyc="APPROVED")
        reply = await http.post(f"/v1/admin/merchants/{account.merchant_id}/reject",
                                headers=platform_admin.auth_headers, json={"reason": "x"})
        assert reply.status_code == 409 and reply.json()["error"]["code"] == "INVALID_TRANSITION"

    async def test_freeze_stops_keys_and_logins_at_once_and_unfreeze_restores(
            self, http: httpx.AsyncClient, resources: Resources, platform_admin: AdminAccount) -> None:
        account = await make_merchant(resources)
        freeze = await http.post(f"/v1/admin/merchants/{account.merchant_id}/freeze",
                                 headers=platform_admin.auth_headers, json={"reason": "chargebacks"})
        assert freeze.status_code == 200 and freeze.json()["data"]["status"] == "FROZEN"
        assert (await http.get("/v1/branches", headers=account.signed("GET", "/v1/branches"))).status_code == 401
        assert (await http.get("/v1/branches", headers=account.auth_headers)).status_code == 401
        login = await http.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
        assert login.status_code == 403
        refresh = await http.post("/v1/auth/refresh", json={"refreshToken": account.refresh_token})
        assert refresh.status_code == 403 and refresh.json()["error"]["code"] == "MERCHANT_INACTIVE"
        assert await emails_to(resources, account.email, "merchant.frozen")
        unfreeze = await http.post(f"/v1/admin/merchants/{account.merchant_id}/unfreeze",
                                   headers=platform_admin.auth_headers, json={})
        assert unfreeze.json()["data"]["status"] == "ACTIVE"
        assert (await http.get("/v1/branches", headers=account.signed("GET", "/v1/branches"))).status_code == 200
        terminate = await http.post(f"/v1/admin/merchants/{account.merchant_id}/terminate",
                                    headers=platform_admin.auth_headers, json={})
        assert terminate.status_code == 200
        back = await http.post(f"/v1/admin/merchants/{account.merchant_id}/unfreeze",
                               headers=platform_admin.auth_headers, json={})
        assert back.status_code == 409

    async def test_viewer_cannot_approve_and_admin_cannot_freeze(self, http: httpx.AsyncClient,
                                                                 resources: Resources) -> None:
        account = await make_merchant(resources, kyc="PENDING")
        viewer, admin = await make_admin(resources, "VIEWER"), await make_admin(resources, "ADMIN")
        assert (await http.post(f"/v1/admin/merchants/{account.merchant_id}/approve",
                                headers=viewer.auth_headers, json={})).status_code == 403
        assert (await http.post(f"/v1/admin/merchants/{account.merchant_id}/freeze",
                                headers=admin.auth_headers, json={})).status_code == 403
        listed = await http.get("/v1/admin/merchants", headers=viewer.auth_headers, params={"search": account.email})
        assert listed.status_code == 200 and listed.json()["meta"]["total"] == 1


class TestAdminLogin:
    async def test_login_always_needs_a_second_factor(self, http: httpx.AsyncClient,
                                                      platform_admin: AdminAccount) -> None:
        first = await http.post("/v1/admin/auth/login", json={"email": platform_admin.email, "password": PASSWORD})
        data = first.json()["data"]
        assert data["twoFactorRequired"] is True and "accessToken" not in data
        wrong = await http.post("/v1/admin/auth/2fa/verify",
                                json={"challengeToken": data["challengeToken"], "code": "000000"})
        assert wrong.status_code == 401
        ok = await http.post("/v1/admin/auth/2fa/verify",
                             json={"challengeToken": data["challengeToken"], "code": platform_admin.totp_code()})
        assert ok.status_code == 200
        me = await http.get("/v1/admin/auth/me",
                            headers={"Authorization": f"Bearer {ok.json()['data']['accessToken']}"})
        assert len(me.json()["data"]["permissions"]) == 15

    async def test_invited_admin_must_enrol_2fa_and_change_password_first(
            self, http: httpx.AsyncClient, resources: Resources, platform_admin: AdminAccount) -> None:
        email = unique_email("invitee")
        invite = await http.post("/v1/admin/users/invite", headers=platform_admin.auth_headers,
                                 json={"email": email, "name": "New Admin", "role": "ADMIN"})
        assert invite.status_code == 201
        [message] = await emails_to(resources, email, "admin.invite")
        token = message["context"]["token"]  # type: ignore[index]
        accepted = await http.post("/v1/admin/auth/accept-invite", json={"token": token, "password": "Temp0rary-Pw"})
        assert accepted.status_code == 200
        login = await http.post("/v1/admin/auth/login", json={"email": email, "password": "Temp0rary-Pw"})
        challenge = login.json()["data"]
        assert challenge["twoFactorSetupRequired"] is True
        setup = await http.post("/v1/admin/auth/2fa/setup", json={"challengeToken": challenge["challengeToken"]})
        secret = setup.json()["data"]["secret"]
        confirm = await http.post("/v1/admin/auth/2fa/confirm", json={
            "challengeToken": challenge["challengeToken"], "code": pyotp.TOTP(secret).now()})
        assert confirm.status_code == 200 and len(confirm.json()["data"]["recoveryCodes"]) == 10

    async def test_forced_password_change_is_enforced_by_the_server(self, http: httpx.AsyncClient,
                                                                    resources: Resources) -> None:
        from node.admin import accounts

        admin = await make_admin(resources, "ADMIN")
        async with resources.db.unit_of_work() as session:
            row = await accounts.get(session, admin.admin_id, for_update=True)
            assert row is not None
            row.must_change_password = True
        blocked = await http.get("/v1/admin/merchants", headers=admin.auth_headers)
        assert blocked.status_code == 403 and blocked.json()["error"]["code"] == "PASSWORD_CHANGE_REQUIRED"
        assert (await http.get("/v1/admin/auth/me", headers=admin.auth_headers)).status_code == 200
        changed = await http.post("/v1/admin/auth/change-password", headers=admin.auth_headers,
                                  json={"currentPassword": PASSWORD, "newPassword": "Brand-New-Passw0rd"})
        assert changed.status_code == 200
        assert (await http.get("/v1/admin/merchants", headers=admin.auth_headers)).status_code == 200

    async def test_admin_brute_force_is_rate_limited(self, http: httpx.AsyncClient,
                                                     platform_admin: AdminAccount) -> None:
        statuses = [(await http.post("/v1/admin/auth/login", json={"email": platform_admin.email,
                                                                    "password": "Wrong-pass1"})).status_code
                    for _ in range(11)]
        assert statuses[-1] == 429 and statuses[0] == 401


class TestSettingsAndLegal:
    async def test_settings_changes_keep_history(self, http: httpx.AsyncClient,
                                                 platform_admin: AdminAccount) -> None:
        headers = platform_admin.auth_headers
        before = (await http.get("/v1/admin/settings", headers=headers)).json()["data"]["fees"]
        new = {"platformFeePercent": "1.25", "exchangeFeePercent": "0.5"}
        try:
            reply = await http.put("/v1/admin/settings/fees", headers=headers, json={"value": new})
            assert reply.status_code == 200
            wrong_type = await http.put("/v1/admin/settings/fees", headers=headers, json={"value": "1.25"})
            assert wrong_type.status_code == 400
            unknown = await http.put("/v1/admin/settings/nope", headers=headers, json={"value": {}})
            assert unknown.status_code == 404
            current = await http.get("/v1/admin/settings", headers=headers)
            assert current.json()["data"]["fees"] == new
            history = await http.get("/v1/admin/settings/history", headers=headers, params={"key": "fees"})
            assert history.json()["data"][0]["newValue"] == new
        finally:
            # the settings are the whole platform's: other tests price payments with them
            await http.put("/v1/admin/settings/fees", headers=headers, json={"value": before})

    async def test_legal_documents_are_versioned_and_accepted(self, http: httpx.AsyncClient,
                                                             platform_admin: AdminAccount,
                                                             merchant_account: MerchantAccount) -> None:
        kind = "privacy_policy"
        first = await http.post("/v1/admin/legal-documents", headers=platform_admin.auth_headers,
                                json={"kind": kind, "title": "Privacy", "content": "v1 text"})
        second = await http.post("/v1/admin/legal-documents", headers=platform_admin.auth_headers,
                                 json={"kind": kind, "title": "Privacy", "content": "v2 text"})
        assert second.json()["data"]["version"] == first.json()["data"]["version"] + 1
        stale = await http.post("/v1/legal-documents/accept", headers=merchant_account.auth_headers,
                                json={"documentId": first.json()["data"]["id"]})
        assert stale.status_code == 404
        ok = await http.post("/v1/legal-documents/accept", headers=merchant_account.auth_headers,
                             json={"documentId": second.json()["data"]["id"]})
        assert ok.status_code == 200
        current = await http.get("/v1/legal-documents/current", headers=merchant_account.auth_headers)
        [doc] = [d for d in current.json()["data"] if d["kind"] == kind]
        assert doc["accepted"] is True and doc["content"] == "v2 text"

    async def test_kyc_submission_needs_the_current_terms_accepted(
            self, http: httpx.AsyncClient, resources: Resources, platform_admin: AdminAccount) -> None:
        published = await http.post("/v1/admin/legal-documents", headers=platform_admin.auth_headers,
                                    json={"kind": "terms_and_conditions", "title": "Terms", "content": "terms"})
        account = await make_merchant(resources, kyc="PENDING")
        await http.patch("/v1/merchants/me", headers=account.auth_headers, json=PROFILE)
        refused = await http.post("/v1/merchants/me/kyc/submit", headers=account.auth_headers)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "LEGAL_ACCEPTANCE_REQUIRED"
        for doc in (await http.get("/v1/legal-documents/current", headers=account.auth_headers)).json()["data"]:
            await http.post("/v1/legal-documents/accept", headers=account.auth_headers,
                            json={"documentId": doc["id"]})
        ok = await http.post("/v1/merchants/me/kyc/submit", headers=account.auth_headers)
        assert ok.status_code == 200 and published.status_code == 201


@pytest.mark.parametrize("path", ["/v1/admin/merchants", "/v1/admin/audit-logs", "/v1/admin/users"])
async def test_admin_routes_refuse_merchants_and_anonymous(path: str, http: httpx.AsyncClient,
                                                           merchant_account: MerchantAccount) -> None:
    assert (await http.get(path)).status_code == 401
    assert (await http.get(path, headers=merchant_account.auth_headers)).status_code == 401
    assert (await http.get(path, headers=merchant_account.signed("GET", path))).status_code == 401


async def test_admin_search_with_odd_characters_is_safe(http: httpx.AsyncClient, platform_admin: AdminAccount) -> None:
    for search in ("%", "_", "\\", "ශ්‍රී", "' OR 1=1 --"):
        reply = await http.get("/v1/admin/merchants", headers=platform_admin.auth_headers, params={"search": search})
        assert reply.status_code == 200
    nul = await http.get("/v1/admin/merchants", headers=platform_admin.auth_headers, params={"search": "a\x00"})
    assert nul.status_code == 400


class TestAdminUsers:
    async def test_super_admin_changes_roles_and_deactivates_but_not_itself(
            self, http: httpx.AsyncClient, resources: Resources, platform_admin: AdminAccount) -> None:
        other = await make_admin(resources, "ADMIN")
        demoted = await http.patch(f"/v1/admin/users/{other.admin_id}", headers=platform_admin.auth_headers,
                                   json={"role": "VIEWER"})
        assert demoted.status_code == 200 and demoted.json()["data"]["role"] == "VIEWER"
        # the new role applies to the token already issued
        assert (await http.post(f"/v1/admin/merchants/{other.admin_id}/reject", headers=other.auth_headers,
                                json={"reason": "x"})).status_code == 403
        off = await http.patch(f"/v1/admin/users/{other.admin_id}", headers=platform_admin.auth_headers,
                               json={"isActive": False})
        assert off.status_code == 200
        assert (await http.get("/v1/admin/auth/me", headers=other.auth_headers)).status_code == 401
        own = await http.patch(f"/v1/admin/users/{platform_admin.admin_id}", headers=platform_admin.auth_headers,
                               json={"role": "VIEWER"})
        assert own.status_code == 403
        listed = await http.get("/v1/admin/users", headers=platform_admin.auth_headers)
        assert any(a["id"] == str(other.admin_id) and not a["isActive"] for a in listed.json()["data"])
        roles = await http.get("/v1/admin/roles", headers=platform_admin.auth_headers)
        assert {r["role"] for r in roles.json()["data"]} == {"SUPER_ADMIN", "ADMIN", "VIEWER"}


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    from types import SimpleNamespace

    from api.deps import client_ip

    def request(peer: str, forwarded: str, trusted: list[str]) -> object:
        settings = SimpleNamespace(trusted_proxies=trusted)
        return SimpleNamespace(client=SimpleNamespace(host=peer), headers={"x-forwarded-for": forwarded},
                               app=SimpleNamespace(state=SimpleNamespace(settings=settings)))

    assert client_ip(request("203.0.113.5", "1.2.3.4", [])) == "203.0.113.5"  # type: ignore[arg-type]
    assert client_ip(request("10.0.0.2", "1.2.3.4, 10.0.0.1", ["10.0.0.1", "10.0.0.2"])) == "1.2.3.4"  # type: ignore[arg-type]
    # a spoofed left-most entry does not win over the hop the proxy saw
    assert client_ip(request("10.0.0.2", "6.6.6.6, 1.2.3.4", ["10.0.0.2"])) == "1.2.3.4"  # type: ignore[arg-type]
