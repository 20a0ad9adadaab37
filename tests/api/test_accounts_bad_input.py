"""Bad input everywhere on the accounts routes: every JSON-body route, with valid credentials,
answers garbage with a 4xx and a stable code, and writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi.routing import APIRoute

from api.app import create_app
from node.config import Settings
from node.resources import Resources
from tests.fixtures.accounts import (
    AdminAccount,
    MerchantAccount,
    in_process_client,
    make_admin,
    make_merchant,
    write_high_water,
)
from tests.fixtures.ownership import api_routes, path_with, route_auth

ACCOUNTS_PREFIXES = ("/v1/auth", "/v1/merchants", "/v1/merchant/", "/v1/branches", "/v1/api-keys", "/v1/users",
                     "/v1/uploads", "/v1/documents", "/v1/legal-documents", "/v1/public/directors", "/v1/admin/auth",
                     "/v1/admin/users", "/v1/admin/merchants", "/v1/admin/settings", "/v1/admin/legal-documents")
_APP = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
JSON_ROUTES = [
    (method, route) for route in api_routes(_APP) if route.path.startswith(ACCOUNTS_PREFIXES)
    and route.body_field is not None and "multipart" not in str(route.body_field.field_info.media_type)
    for method in sorted(route.methods)
]
GARBAGE = [
    b"[]", b'"a string"', b"12", b"null", b"{", b'{"zzUnknownField": 1}', b'{"name": {"deep": [1, 2, 3]}}',
    b'{"email": 5, "password": false, "name": ["x"], "reason": 7, "value": ' + b"[" * 50 + b"]" * 50 + b"}",
    '{"name": "\\u0000 nul", "businessName": "\\u0000", "email": "a\\u0000@b.c", "zz": "\U0001F600"}'.encode(),
    b'{"email": "' + b"a" * 100_000 + b'@x.io", "name": "' + b"n" * 100_000 + b'"}',
]


@pytest_asyncio.fixture(scope="module")
async def who(resources: Resources) -> tuple[MerchantAccount, AdminAccount]:
    return await make_merchant(resources), await make_admin(resources, "SUPER_ADMIN")


@pytest_asyncio.fixture
async def http(resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_client(resources) as client:  # type: ignore[attr-defined]
        yield client


def test_routes_found() -> None:
    assert len(JSON_ROUTES) > 25


@pytest.mark.parametrize(("method", "route"), JSON_ROUTES, ids=[f"{m} {r.path}" for m, r in JSON_ROUTES])
async def test_garbage_is_a_stable_4xx_and_writes_nothing(
        method: str, route: APIRoute, resources: Resources, http: httpx.AsyncClient,
        who: tuple[MerchantAccount, AdminAccount]) -> None:
    merchant, admin = who
    path = path_with(route, {"merchantId": str(merchant.merchant_id)})
    headers = admin.auth_headers if route_auth(route) == "admin" else merchant.auth_headers
    water = await write_high_water(resources)
    for body in GARBAGE:
        reply = await http.request(method, path, content=body,
                                   headers={**headers, "content-type": "application/json"})
        assert 400 <= reply.status_code < 500, f"{body[:60]!r}: {reply.status_code} {reply.text[:200]}"
        assert reply.json()["error"]["code"] in {"INVALID_JSON", "VALIDATION_ERROR", "NOT_FOUND", "RATE_LIMITED",
                                                 "UNAUTHORIZED", "FORBIDDEN"}
    assert await write_high_water(resources) == water
