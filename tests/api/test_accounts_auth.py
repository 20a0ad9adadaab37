"""Merchant portal accounts over HTTP: registration, login, tokens, passwords, 2FA, rate limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pyotp
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from node.merchants.models import Merchant, User
from node.resources import Resources
from tests.fixtures.accounts import (
    PASSWORD,
    MerchantAccount,
    emails_to,
    in_process_client,
    make_admin,
    make_merchant,
    unique_email,
)


@pytest_asyncio.fixture
async def http(resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_client(resources) as client:  # type: ignore[attr-defined]
        yield client


async def _register(http: httpx.AsyncClient, **over: Any) -> httpx.Response:
    body = {"businessName": "Ceylon Spice Co", "email": unique_email("reg"), "password": PASSWORD,
            "name": "Kamala", "phone": "+94770000000", **over}
    return await http.post("/v1/auth/register", json=body)


async def _counts(resources: Resources) -> tuple[int, int]:
    async with resources.db.unit_of_work() as session:
        merchants = await session.scalar(select(func.count()).select_from(Merchant))
        users = await session.scalar(select(func.count()).select_from(User))
    return int(merchants or 0), int(users or 0)


class TestRegistration:
    async def test_register_returns_tokens_user_and_merchant_and_sends_emails(
            self, http: httpx.AsyncClient, resources: Resources) -> None:
        email = unique_email("reg")
        reply = await _register(http, email=email.upper())
        assert reply.status_code == 201, reply.text
        data = reply.json()["data"]
        assert data["user"]["role"] == "ADMIN" and data["user"]["email"] == email
        assert data["merchant"]["kycStatus"] == "PENDING" and data["merchant"]["status"] == "ACTIVE"
        assert data["merchant"]["country"] == "LK" and data["merchant"]["currency"] == "LKR"
        assert data["merchant"]["instantAccessUsedUsdt"] == "0"
        me = await http.get("/v1/auth/me", headers={"Authorization": f"Bearer {data['accessToken']}"})
        assert me.status_code == 200 and "users:manage" in me.json()["data"]["permissions"]
        templates = [m["template"] for m in await emails_to(resources, email)]
        assert templates == ["merchant.welcome", "email.verification"]

    async def test_email_verification_token_works_once(self, http: httpx.AsyncClient, resources: Resources) -> None:
        email = unique_email("verify")
        assert (await _register(http, email=email)).status_code == 201
        [message] = await emails_to(resources, email, "email.verification")
        token = message["context"]["token"]  # type: ignore[index]
        assert (await http.post("/v1/auth/verify-email", json={"token": token})).status_code == 200
        again = await http.post("/v1/auth/verify-email", json={"token": token})
        assert again.status_code == 400 and again.json()["error"]["code"] == "INVALID_TOKEN"

    async def test_duplicate_email_is_409(self, http: httpx.AsyncClient) -> None:
        email = unique_email("dup")
        assert (await _register(http, email=email)).status_code == 201
        reply = await _register(http, email=email)
        assert reply.status_code == 409 and reply.json()["error"]["code"] == "EMAIL_TAKEN"

    @pytest.mark.parametrize(("override", "code"), [
        ({"password": "weakpass"}, "WEAK_PASSWORD"),
        ({"password": "NoDigitsHere"}, "WEAK_PASSWORD"),
        ({"email": "not-an-email"}, "VALIDATION_ERROR"),
        ({"businessName": ""}, "VALIDATION_ERROR"),
        ({"businessName": 12}, "VALIDATION_ERROR"),
        ({"businessName": "x" * 201}, "VALIDATION_ERROR"),
        ({"name": None}, "VALIDATION_ERROR"),
        ({"unexpected": "field"}, "VALIDATION_ERROR"),
        ({"password": ["A1aaaaaaa"]}, "VALIDATION_ERROR"),
        ({"businessName": "tea\x00house"}, "VALIDATION_ERROR"),
    ])
    async def test_bad_input_is_400_and_writes_nothing(self, http: httpx.AsyncClient, resources: Resources,
                                                       override: dict[str, Any], code: str) -> None:
        before = await _counts(resources)
        reply = await _register(http, **override)
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["code"] == code
        assert await _counts(resources) == before

    @pytest.mark.parametrize("raw", [b'{"businessName": ', b"[]", b'"text"', b"\xff\xfe", b"{}" + b" " * 10])
    async def test_malformed_bodies(self, http: httpx.AsyncClient, resources: Resources, raw: bytes) -> None:
        before = await _counts(resources)
        reply = await http.post("/v1/auth/register", content=raw, headers={"content-type": "application/json"})
        assert reply.status_code == 400
        assert reply.json()["error"]["code"] in {"INVALID_JSON", "VALIDATION_ERROR"}
        assert await _counts(resources) == before

    async def test_unicode_business_names_are_kept(self, http: httpx.AsyncClient) -> None:
        reply = await _register(http, businessName="ලංකා තේ 🍵 Ünïcode")
        assert reply.status_code == 201
        assert reply.json()["data"]["merchant"]["businessName"] == "ලංකා තේ 🍵 Ünïcode"

    async def test_huge_body_is_refused(self, http: httpx.AsyncClient, resources: Resources) -> None:
        before = await _counts(resources)
        reply = await _register(http, businessName="x" * 2_000_000)
        assert reply.status_code == 400
        assert await _counts(resources) == before


class TestLogin:
    async def test_login_and_me(self, http: httpx.AsyncClient, merchant_account: MerchantAccount) -> None:
        reply = await http.post("/v1/auth/login", json={"email": merchant_account.email, "password": PASSWORD})
        assert reply.status_code == 200, reply.text
        data = reply.json()["data"]
        assert data["twoFactorRequired"] is False and data["tokenType"] == "Bearer"
        claims = jwt.decode(data["accessToken"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 15 * 60 and claims["aud"] == "openpay:merchant"
        me = await http.get("/v1/auth/me", headers={"Authorization": f"Bearer {data['accessToken']}"})
        assert me.json()["data"]["merchant"]["id"] == str(merchant_account.merchant_id)

    async def test_wrong_password_and_unknown_email_look_the_same(
            self, http: httpx.AsyncClient, merchant_account: MerchantAccount) -> None:
        wrong = await http.post("/v1/auth/login", json={"email": merchant_account.email, "password": "Wrong1234"})
        unknown = await http.post("/v1/auth/login", json={"email": unique_email(), "password": "Wrong1234"})
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json() == unknown.json()

    @pytest.mark.parametrize("status", ["FROZEN", "INACTIVE", "TERMINATED"])
    async def test_non_active_merchant_cannot_log_in_or_refresh(self, http: httpx.AsyncClient,
                                                                resources: Resources, status: str) -> None:
        account = await make_merchant(resources, status=status)
        reply = await http.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
        assert reply.status_code == 403 and reply.json()["error"]["code"] == "MERCHANT_INACTIVE"
        refresh = await http.post("/v1/auth/refresh", json={"refreshToken": account.refresh_token})
        assert refresh.status_code == 403 and refresh.json()["error"]["code"] == "MERCHANT_INACTIVE"

    async def test_brute_force_on_one_account_hits_the_rate_limit(
            self, http: httpx.AsyncClient, merchant_account: MerchantAccount) -> None:
        statuses = []
        for _ in range(12):
            reply = await http.post("/v1/auth/login", json={"email": merchant_account.email, "password": "Bad12345"})
            statuses.append(reply.status_code)
        assert statuses[:10] == [401] * 10 and statuses[10] == 429
        assert int(reply.headers["Retry-After"]) > 0
        assert reply.headers["X-RateLimit-Limit"] == "10" and reply.headers["X-RateLimit-Remaining"] == "0"
        assert reply.json()["error"]["code"] == "RATE_LIMITED"
        # even the right password is refused while limited
        ok = await http.post("/v1/auth/login", json={"email": merchant_account.email, "password": PASSWORD})
        assert ok.status_code == 429


class TestTokens:
    async def test_expired_tampered_and_wrong_audience_tokens_are_refused(
            self, http: httpx.AsyncClient, resources: Resources, merchant_account: MerchantAccount) -> None:
        secret = resources.settings.jwt_secret.get_secret_value()
        claims = jwt.decode(merchant_account.access_token, secret, algorithms=["HS256"], audience="openpay:merchant")
        expired = jwt.encode({**claims, "exp": int(time.time()) - 1}, secret, algorithm="HS256")
        tampered = merchant_account.access_token[:-3] + ("aaa" if not merchant_account.access_token.endswith("aaa")
                                                         else "bbb")
        foreign = jwt.encode(claims, "another-secret-of-sufficient-length-123", algorithm="HS256")
        none_alg = jwt.encode(claims, "", algorithm="none")
        for token in (expired, tampered, foreign, none_alg, "garbage"):
            reply = await http.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
            assert reply.status_code == 401, token
        # a merchant token on an admin route, and an admin token on a merchant route
        admin = await make_admin(resources, "SUPER_ADMIN")
        assert (await http.get("/v1/admin/auth/me", headers=merchant_account.auth_headers)).status_code == 401
        assert (await http.get("/v1/auth/me", headers=admin.auth_headers)).status_code == 401
        # a refresh token is not an access token
        assert (await http.get("/v1/auth/me", headers={"Authorization": f"Bearer {merchant_account.refresh_token}"})
                ).status_code == 401

    async def test_refresh_rotates_and_reuse_revokes_the_family(
            self, http: httpx.AsyncClient, merchant_account: MerchantAccount) -> None:
        first = await http.post("/v1/auth/refresh", json={"refreshToken": merchant_account.refresh_token})
        assert first.status_code == 200
        second_token = first.json()["data"]["refreshToken"]
        assert second_token != merchant_account.refresh_token
        reuse = await http.post("/v1/auth/refresh", json={"refreshToken": merchant_account.refresh_token})
        assert reuse.status_code == 401
        # the thief's copy and the victim's newer token are both dead now
        after = await http.post("/v1/auth/refresh", json={"refreshToken": second_token})
        assert after.status_code == 401

    async def test_logout_revokes_the_refresh_token(self, http: httpx.AsyncClient,
                                                    merchant_account: MerchantAccount) -> None:
        assert (await http.post("/v1/auth/logout", json={"refreshToken": merchant_account.refresh_token})
                ).status_code == 200
        assert (await http.post("/v1/auth/refresh", json={"refreshToken": merchant_account.refresh_token})
                ).status_code == 401


class TestPasswords:
    async def test_change_password_works_and_logs_out_sessions(
            self, http: httpx.AsyncClient, merchant_account: MerchantAccount) -> None:
        wrong = await http.post("/v1/auth/change-password", headers=merchant_account.auth_headers,
                                json={"currentPassword": "Nope12345", "newPassword": "An0ther-Passw0rd"})
        assert wrong.status_code == 401
        ok = await http.post("/v1/auth/change-password", headers=merchant_account.auth_headers,
                             json={"currentPassword": PASSWORD, "newPassword": "An0ther-Passw0rd"})
        assert ok.status_code == 200
        old = await http.post("/v1/auth/login", json={"email": merchant_account.email, "password": PASSWORD})
        assert old.status_code == 401
        new = await http.post("/v1/auth/login", json={"email": merchant_account.email,
                                                      "password": "An0ther-Passw0rd"})
        assert new.status_code == 200
        assert (await http.post("/v1/auth/refresh", json={"refreshToken": merchant_account.refresh_token})
                ).status_code == 401

    async def test_reset_by_emailed_single_use_token(self, http: httpx.AsyncClient, resources: Resources,
                                                     merchant_account: MerchantAccount) -> None:
        unknown = await http.post("/v1/auth/password-reset/request", json={"email": unique_email()})
        reply = await http.post("/v1/auth/password-reset/request", json={"email": merchant_account.email})
        assert reply.status_code == unknown.status_code == 202
        [message] = await emails_to(resources, merchant_account.email, "password.reset")
        token = message["context"]["token"]  # type: ignore[index]
        weak = await http.post("/v1/auth/password-reset/confirm", json={"token": token, "newPassword": "short"})
        assert weak.status_code == 400
        done = await http.post("/v1/auth/password-reset/confirm",
                               json={"token": token, "newPassword": "Reset-Passw0rd"})
        assert done.status_code == 200
        again = await http.post("/v1/auth/password-reset/confirm",
                                json={"token": token, "newPassword": "Reset-Passw0rd2"})
        assert again.status_code == 400 and again.json()["error"]["code"] == "INVALID_TOKEN"
        login = await http.post("/v1/auth/login", json={"email": merchant_account.email,
                                                        "password": "Reset-Passw0rd"})
        assert login.status_code == 200


class TestTwoFactor:
    async def _enable(self, http: httpx.AsyncClient, account: MerchantAccount) -> tuple[str, list[str]]:
        setup = await http.post("/v1/auth/2fa/setup", headers=account.auth_headers)
        assert setup.status_code == 200
        secret = setup.json()["data"]["secret"]
        assert setup.json()["data"]["otpauthUri"].startswith("otpauth://totp/")
        assert setup.json()["data"]["qrSvg"].startswith("data:image/svg+xml")
        self.enable_code = pyotp.TOTP(secret).now()
        confirm = await http.post("/v1/auth/2fa/verify", headers=account.auth_headers,
                                  json={"code": self.enable_code})
        assert confirm.status_code == 200, confirm.text
        codes = confirm.json()["data"]["recoveryCodes"]
        assert len(codes) == 10 and len(set(codes)) == 10
        return secret, codes

    async def test_login_needs_the_second_step_and_codes_cannot_be_replayed(
            self, http: httpx.AsyncClient, merchant_account: MerchantAccount) -> None:
        secret, codes = await self._enable(http, merchant_account)
        first = await http.post("/v1/auth/login", json={"email": merchant_account.email, "password": PASSWORD})
        data = first.json()["data"]
        assert data["twoFactorRequired"] is True and data["accessToken"] is None
        challenge = data["challengeToken"]
        # the challenge token is not an access token
        assert (await http.get("/v1/auth/me", headers={"Authorization": f"Bearer {challenge}"})).status_code == 401
        # the code used to enable 2FA is already spent (the very code: a 30 s step may have begun since);
        # the next step's code works once
        replay_enable = await http.post("/v1/auth/2fa/login",
                                        json={"challengeToken": challenge, "code": self.enable_code})
        assert replay_enable.status_code == 401
        next_code = pyotp.TOTP(secret).at(time.time() + 30)
        ok = await http.post("/v1/auth/2fa/login", json={"challengeToken": challenge, "code": next_code})
        assert ok.status_code == 200 and ok.json()["data"]["accessToken"]
        replay = await http.post("/v1/auth/2fa/login", json={"challengeToken": challenge, "code": next_code})
        assert replay.status_code == 401
        # a recovery code works once
        rc = await http.post("/v1/auth/2fa/login", json={"challengeToken": challenge, "recoveryCode": codes[0]})
        assert rc.status_code == 200
        rc_again = await http.post("/v1/auth/2fa/login", json={"challengeToken": challenge,
                                                              "recoveryCode": codes[0]})
        assert rc_again.status_code == 401

    async def test_totp_guessing_hits_the_rate_limit(self, http: httpx.AsyncClient,
                                                     merchant_account: MerchantAccount) -> None:
        await self._enable(http, merchant_account)
        first = await http.post("/v1/auth/login", json={"email": merchant_account.email, "password": PASSWORD})
        challenge = first.json()["data"]["challengeToken"]
        statuses = [
            (await http.post("/v1/auth/2fa/login", json={"challengeToken": challenge, "code": f"{n:06d}"})).status_code
            for n in range(7)
        ]
        assert statuses[:5] == [401] * 5 and statuses[5] == 429

    async def test_disable_needs_a_valid_code(self, http: httpx.AsyncClient,
                                              merchant_account: MerchantAccount) -> None:
        secret, _ = await self._enable(http, merchant_account)
        bad = await http.post("/v1/auth/2fa/disable", headers=merchant_account.auth_headers, json={"code": "000000"})
        assert bad.status_code == 401
        ok = await http.post("/v1/auth/2fa/disable", headers=merchant_account.auth_headers,
                             json={"code": pyotp.TOTP(secret).at(time.time() + 30)})
        assert ok.status_code == 200
        login = await http.post("/v1/auth/login", json={"email": merchant_account.email, "password": PASSWORD})
        assert login.json()["data"]["twoFactorRequired"] is False
