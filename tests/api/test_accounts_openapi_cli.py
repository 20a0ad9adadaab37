"""OpenAPI documents the accounts API; the accounts CLI works against the real database;
logins from a new device are e-mailed."""

from __future__ import annotations

import asyncio
import re

from typer.testing import CliRunner

from api.app import create_app
from node.config import Settings
from node.resources import Resources
from tests.fixtures.accounts import PASSWORD, emails_to, in_process_client, make_merchant, unique_email


def test_openapi_has_schemas_and_examples_for_the_accounts_routes() -> None:
    schema = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    paths = schema["paths"]
    for path in ("/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh", "/v1/api-keys", "/v1/branches",
                 "/v1/users/invite", "/v1/merchants/me/kyc/submit", "/v1/admin/merchants/{merchantId}/approve",
                 "/v1/admin/audit-logs", "/v1/public/directors/verify/{token}"):
        assert path in paths, path
    register = paths["/v1/auth/register"]["post"]
    body_ref = register["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert schema["components"]["schemas"][body_ref]["examples"][0]["businessName"]
    assert "201" in register["responses"]
    session_schema = schema["components"]["schemas"]["SessionOut"]["properties"]
    assert {"accessToken", "refreshToken", "user", "merchant"} <= set(session_schema)


async def test_cli_merchants_keys_and_admins(resources: Resources, settings: Settings) -> None:
    from node.cli import app

    # REDIS_URL: a suspension from the CLI must reach the API processes' key caches at once
    env = {"DATABASE_URL": settings.database_url or "", "REDIS_URL": settings.redis_url or "",
           "OPENPAY_ENVIRONMENT": "test",
           "OPENPAY_SECRETS_KEY": settings.secrets_key.get_secret_value(),
           "OPENPAY_JWT_SECRET": settings.jwt_secret.get_secret_value()}
    runner = CliRunner()
    email = unique_email("cli")

    def run(*args: str) -> object:
        return runner.invoke(app, list(args), env=env)

    created = await asyncio.to_thread(run, "merchants", "create", "--business-name", "CLI Shop", "--email", email,
                                      "--password", PASSWORD)
    assert created.exit_code == 0, created.output  # type: ignore[attr-defined]
    merchant_id = re.search(r"merchant created: (\S+)", created.output).group(1)  # type: ignore[union-attr, attr-defined]
    listed = await asyncio.to_thread(run, "merchants", "list", "--limit", "200")
    assert "CLI Shop" in listed.output  # type: ignore[attr-defined]
    key = await asyncio.to_thread(run, "keys", "create", merchant_id, "--mode", "test")
    assert key.exit_code == 0, key.output  # type: ignore[attr-defined]
    credential = re.search(r"\(shown once\): (\S+)", key.output).group(1)  # type: ignore[union-attr, attr-defined]
    key_id, secret = credential.split(".", 1)
    from tests.fixtures.accounts import hmac_headers

    async with in_process_client(resources) as http:  # type: ignore[attr-defined]
        ok = await http.get("/v1/merchants/me", headers=hmac_headers(key_id, secret, "GET", "/v1/merchants/me"))
        assert ok.status_code == 200
        suspended = await asyncio.to_thread(run, "merchants", "suspend", merchant_id, "--reason", "test")
        assert suspended.exit_code == 0, suspended.output  # type: ignore[attr-defined]
        refused = await http.get("/v1/merchants/me",
                                 headers=hmac_headers(key_id, secret, "GET", "/v1/merchants/me"))
        assert refused.status_code == 401
    revoked = await asyncio.to_thread(run, "keys", "revoke", key_id)
    assert revoked.exit_code == 0  # type: ignore[attr-defined]
    missing = await asyncio.to_thread(run, "keys", "revoke", "ak_test_" + "0" * 32)
    assert missing.exit_code == 1  # type: ignore[attr-defined]
    approve = await asyncio.to_thread(run, "merchants", "approve", "not-a-uuid")
    assert approve.exit_code == 2  # type: ignore[attr-defined]
    admin = await asyncio.to_thread(run, "admins", "create", "--email", unique_email("cliadmin"), "--password",
                                    PASSWORD, "--role", "VIEWER")
    assert admin.exit_code == 0, admin.output  # type: ignore[attr-defined]


async def test_a_login_from_a_new_device_is_emailed(resources: Resources) -> None:
    account = await make_merchant(resources)
    async with in_process_client(resources, ip="198.51.100.1") as http:  # type: ignore[attr-defined]
        first = await http.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
        assert first.status_code == 200
        again = await http.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD})
        assert again.status_code == 200
    assert await emails_to(resources, account.email, "login.new_device") == []
    async with in_process_client(resources, ip="198.51.100.2") as http:  # type: ignore[attr-defined]
        await http.post("/v1/auth/login", json={"email": account.email, "password": PASSWORD},
                        headers={"user-agent": "other-browser"})
    [message] = await emails_to(resources, account.email, "login.new_device")
    assert message["context"]["ip"] == "198.51.100.2"  # type: ignore[index]
