"""Tenant isolation, automatically: every route with an object id behind merchant
authentication, called with merchant B's credentials on merchant A's object, answers
404 or 403 and changes nothing. Routes added later are covered without editing this file;
their id parameters need a factory in tests/fixtures/ownership.py (the test says which)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi.routing import APIRoute

from api.app import create_app
from node.config import Settings
from node.resources import Resources
from tests.fixtures.accounts import MerchantAccount, in_process_client, make_merchant, write_high_water
from tests.fixtures.ownership import SAMPLE_BODIES, api_routes, factory_for, id_params, path_with, route_auth

_APP = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
ROUTES = [
    (method, route) for route in api_routes(_APP)
    if route_auth(route) in ("merchant", "api_key") and id_params(route)
    for method in sorted(route.methods)
]


@pytest_asyncio.fixture(scope="module")
async def tenants(resources: Resources) -> tuple[MerchantAccount, MerchantAccount]:
    return await make_merchant(resources), await make_merchant(resources)


@pytest_asyncio.fixture
async def http(resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_client(resources) as client:  # type: ignore[attr-defined]
        yield client


def test_the_walk_finds_the_accounts_routes() -> None:
    paths = {route.path for _, route in ROUTES}
    assert {"/v1/branches/{branchId}", "/v1/api-keys/{keyId}/revoke", "/v1/users/{userId}",
            "/v1/merchants/{merchantId}", "/v1/documents/{documentId}/link"} <= paths


@pytest.mark.parametrize(("method", "route"), ROUTES, ids=[f"{m} {r.path}" for m, r in ROUTES])
async def test_another_merchant_cannot_touch_the_object(
        method: str, route: APIRoute, resources: Resources, http: httpx.AsyncClient,
        tenants: tuple[MerchantAccount, MerchantAccount]) -> None:
    owner, intruder = tenants
    values: dict[str, str] = {}
    snapshots = []
    for param in id_params(route):
        factory = factory_for(route.path, param)
        assert factory is not None, (
            f"no owned-object factory for path parameter {param!r} of {route.path}: register one with "
            "@owned(...) in tests/fixtures/ownership.py")
        made = await factory(resources, owner)
        values[param] = made.id
        if made.snapshot:
            snapshots.append(made.snapshot)
    path = path_with(route, values)
    body: Any = SAMPLE_BODIES.get((method, route.path), {})
    raw = b"" if method in ("GET", "DELETE", "HEAD") else httpx.Request("POST", "/", json=body).content
    credentials: list[dict[str, str]] = [intruder.signed(method, path, raw)]
    if route_auth(route) == "merchant":
        credentials.append(intruder.auth_headers)
    before = [await snap() for snap in snapshots]
    water = await write_high_water(resources)
    for headers in credentials:
        if "x-signature" in headers:
            headers = intruder.signed(method, path, raw)  # a fresh signature for each call
        reply = await http.request(method, path, content=raw or None,
                                   headers={**headers, "content-type": "application/json"})
        assert reply.status_code in (403, 404), f"{method} {path}: {reply.status_code} {reply.text[:300]}"
    assert [await snap() for snap in snapshots] == before, "the object changed"
    assert await write_high_water(resources) == water, "something was written (outbox or audit log)"
