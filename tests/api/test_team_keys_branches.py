"""API keys, the team and branches through the portal API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from node.resources import Resources
from tests.fixtures.accounts import (
    PASSWORD,
    MerchantAccount,
    add_user,
    emails_to,
    hmac_headers,
    in_process_client,
    unique_email,
)


@pytest_asyncio.fixture
async def http(resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_client(resources) as client:  # type: ignore[attr-defined]
        yield client


class TestApiKeys:
    async def test_secret_is_shown_once_works_and_revocation_is_immediate(
            self, http: httpx.AsyncClient, merchant_account: MerchantAccount) -> None:
        created = await http.post("/v1/api-keys", headers=merchant_account.auth_headers,
                                  json={"name": "shop", "mode": "live"})
        assert created.status_code == 201
        data = created.json()["data"]
        assert data["keyId"].startswith("ak_live_") and len(data["keyId"]) == 8 + 32
        assert data["secret"].startswith("sk_live_") and len(data["secret"]) == 8 + 64
        assert data["credential"] == f"{data['keyId']}.{data['secret']}"
        listed = await http.get("/v1/api-keys", headers=merchant_account.auth_headers)
        assert "\"secret\"" not in listed.text and data["secret"] not in listed.text
        signed = hmac_headers(data["keyId"], data["secret"], "GET", "/v1/branches")
        assert (await http.get("/v1/branches", headers=signed)).status_code == 200
        listed = await http.get("/v1/api-keys", headers=merchant_account.auth_headers)
        [row] = [k for k in listed.json()["data"] if k["id"] == data["id"]]
        assert row["lastUsedAt"] is not None
        revoked = await http.post(f"/v1/api-keys/{data['id']}/revoke", headers=merchant_account.auth_headers,
                                  json={"reason": "rotated"})
        assert revoked.json()["data"]["revokedReason"] == "rotated"
        again = hmac_headers(data["keyId"], data["secret"], "GET", "/v1/branches")
        assert (await http.get("/v1/branches", headers=again)).status_code == 401

    async def test_ip_allow_list_is_enforced(self, http: httpx.AsyncClient,
                                             merchant_account: MerchantAccount) -> None:
        created = await http.post("/v1/api-keys", headers=merchant_account.auth_headers,
                                  json={"name": "locked", "allowedIps": ["192.0.2.0/24"]})
        data = created.json()["data"]
        reply = await http.get("/v1/branches", headers=hmac_headers(data["keyId"], data["secret"], "GET",
                                                                    "/v1/branches"))
        assert reply.status_code == 403 and reply.json()["error"]["code"] == "IP_NOT_ALLOWED"
        bad = await http.post("/v1/api-keys", headers=merchant_account.auth_headers,
                              json={"name": "x", "allowedIps": ["not-an-ip"]})
        assert bad.status_code == 400

    async def test_api_keys_cannot_manage_keys(self, http: httpx.AsyncClient,
                                               merchant_account: MerchantAccount) -> None:
        body = b'{"name":"x"}'
        reply = await http.post("/v1/api-keys", content=body,
                                headers={**merchant_account.signed("POST", "/v1/api-keys", body),
                                         "content-type": "application/json"})
        assert reply.status_code == 403


class TestTeam:
    async def test_invite_accept_login_and_role_change(self, http: httpx.AsyncClient, resources: Resources,
                                                       merchant_account: MerchantAccount) -> None:
        email = unique_email("cashier")
        invite = await http.post("/v1/users/invite", headers=merchant_account.auth_headers,
                                 json={"email": email, "name": "Cashier", "role": "USER"})
        assert invite.status_code == 201 and invite.json()["data"]["invitePending"] is True
        [message] = await emails_to(resources, email, "user.invite")
        token = message["context"]["token"]  # type: ignore[index]
        accepted = await http.post("/v1/auth/invites/accept", json={"token": token, "password": PASSWORD})
        assert accepted.status_code == 200
        login = await http.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['data']['accessToken']}"}
        assert (await http.get("/v1/users", headers=headers)).status_code == 403
        # a role change applies to the token already issued
        user_id = invite.json()["data"]["id"]
        promoted = await http.patch(f"/v1/users/{user_id}", headers=merchant_account.auth_headers,
                                    json={"role": "MANAGER"})
        assert promoted.json()["data"]["role"] == "MANAGER"
        assert (await http.get("/v1/users", headers=headers)).status_code == 200
        # deactivation locks the user out at once
        await http.delete(f"/v1/users/{user_id}", headers=merchant_account.auth_headers)
        assert (await http.get("/v1/auth/me", headers=headers)).status_code == 401

    async def test_the_last_admin_cannot_be_removed_and_nobody_edits_themselves(
            self, http: httpx.AsyncClient, resources: Resources, merchant_account: MerchantAccount) -> None:
        second = await add_user(resources, merchant_account, role="ADMIN")
        own = await http.patch(f"/v1/users/{merchant_account.user_id}", headers=merchant_account.auth_headers,
                               json={"role": "USER"})
        assert own.status_code == 403
        demote = await http.patch(f"/v1/users/{second.user_id}", headers=merchant_account.auth_headers,
                                  json={"role": "USER"})
        assert demote.status_code == 200
        last = await http.patch(f"/v1/users/{merchant_account.user_id}", headers=second.auth_headers,
                                json={"isActive": False})
        assert last.status_code == 403  # second is a USER now: no users:manage

    async def test_duplicate_and_bad_invites(self, http: httpx.AsyncClient,
                                             merchant_account: MerchantAccount) -> None:
        dup = await http.post("/v1/users/invite", headers=merchant_account.auth_headers,
                              json={"email": merchant_account.email, "name": "x", "role": "USER"})
        assert dup.status_code == 409
        bad_role = await http.post("/v1/users/invite", headers=merchant_account.auth_headers,
                                   json={"email": unique_email(), "name": "x", "role": "OWNER"})
        assert bad_role.status_code == 400


class TestBranches:
    async def test_crud_and_branch_scoped_users(self, http: httpx.AsyncClient, resources: Resources,
                                                merchant_account: MerchantAccount) -> None:
        made = []
        for name in ("Colombo", "Kandy"):
            reply = await http.post("/v1/branches", headers=merchant_account.auth_headers,
                                    json={"name": name, "city": name, "defaults": {"currency": "LKR"}})
            assert reply.status_code == 201
            made.append(reply.json()["data"])
        assert made[0]["defaults"] == {"currency": "LKR"}
        scoped = await add_user(resources, merchant_account, role="USER", branch_id=made[0]["id"])
        mine = await http.get("/v1/branches", headers=scoped.auth_headers)
        assert [b["id"] for b in mine.json()["data"]] == [made[0]["id"]]
        assert (await http.get(f"/v1/branches/{made[1]['id']}", headers=scoped.auth_headers)).status_code == 404
        updated = await http.put(f"/v1/branches/{made[1]['id']}", headers=merchant_account.auth_headers,
                                 json={"description": "hill country"})
        assert updated.json()["data"]["description"] == "hill country"
        assert (await http.delete(f"/v1/branches/{made[1]['id']}", headers=merchant_account.auth_headers)
                ).status_code == 200
        assert (await http.get(f"/v1/branches/{made[1]['id']}", headers=merchant_account.auth_headers)
                ).status_code == 404
        bad = await http.post("/v1/branches", headers=merchant_account.auth_headers,
                              json={"name": "x", "defaults": {"currency": "DOGE"}})
        assert bad.status_code == 400
        not_uuid = await http.get("/v1/branches/not-a-uuid", headers=merchant_account.auth_headers)
        assert not_uuid.status_code == 400
