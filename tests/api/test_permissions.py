"""Each role gets exactly its allowed routes: table-driven from the role tables, over every
route of the app that declares a permission (so routes added later are covered too)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi.routing import APIRoute

from api.app import create_app
from node.auth.principal import ADMIN_ROLE_PERMISSIONS, API_KEY_PERMISSIONS, ROLE_PERMISSIONS
from node.config import Settings
from node.resources import Resources
from tests.fixtures.accounts import (
    AdminAccount,
    MerchantAccount,
    add_user,
    in_process_client,
    make_admin,
    make_merchant,
)
from tests.fixtures.ownership import api_routes, path_with, route_auth, route_permissions

_APP = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
_ROUTES = api_routes(_APP)
MERCHANT_ROUTES = [(m, r) for r in _ROUTES if route_auth(r) in ("merchant", "api_key") for m in sorted(r.methods)]
ADMIN_ROUTES = [(m, r) for r in _ROUTES if route_auth(r) == "admin" for m in sorted(r.methods)]

# routes any authenticated caller of that kind may use (own session, own profile)
SELF_SERVICE = {
    "/v1/auth/me", "/v1/auth/change-password", "/v1/auth/2fa/setup", "/v1/auth/2fa/verify",
    "/v1/auth/2fa/disable", "/v1/auth/verify-email/resend",
    "/v1/admin/auth/me", "/v1/admin/auth/change-password", "/v1/admin/roles", "/v1/admin/settings",
    "/v1/admin/settings/history", "/v1/admin/legal-documents",
}


def test_every_merchant_and_admin_route_declares_one_permission() -> None:
    # the SDK routes (/v1/sdk/...) are the wire protocol: any valid API key may call them
    undeclared = [f"{m} {r.path}" for m, r in MERCHANT_ROUTES + ADMIN_ROUTES
                  if r.path not in SELF_SERVICE and not r.path.startswith("/v1/sdk/")
                  and len(route_permissions(r)) != 1]
    assert undeclared == []


def test_the_admin_roles_are_the_originals() -> None:
    assert len(ADMIN_ROLE_PERMISSIONS["SUPER_ADMIN"]) == 15
    assert not any(p.endswith(":manage") for p in ADMIN_ROLE_PERMISSIONS["ADMIN"])
    assert len(ADMIN_ROLE_PERMISSIONS["ADMIN"]) == 12
    assert all(p.endswith(":read") for p in ADMIN_ROLE_PERMISSIONS["VIEWER"])


@pytest_asyncio.fixture(scope="module")
async def callers(resources: Resources) -> dict[str, dict[str, str] | str]:
    account = await make_merchant(resources)
    headers: dict[str, dict[str, str] | str] = {"ADMIN": account.auth_headers}
    for role in ("MANAGER", "USER"):
        headers[role] = (await add_user(resources, account, role=role)).auth_headers
    headers["API_KEY"] = "api_key"
    for role in ADMIN_ROLE_PERMISSIONS:
        headers[f"PLATFORM_{role}"] = (await make_admin(resources, role)).auth_headers
    _accounts[id(resources)] = account
    return headers


_accounts: dict[int, MerchantAccount] = {}
_admins: dict[str, AdminAccount] = {}


@pytest_asyncio.fixture
async def http(resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_client(resources) as client:  # type: ignore[attr-defined]
        yield client


def _refused(reply: httpx.Response) -> bool:
    return reply.status_code == 403 and "missing" in reply.json()["error"]["message"] \
        and "permission" in reply.json()["error"]["message"]


@pytest.mark.parametrize(("method", "route"), [x for x in MERCHANT_ROUTES if route_permissions(x[1])],
                         ids=[f"{m} {r.path}" for m, r in MERCHANT_ROUTES if route_permissions(r)])
async def test_merchant_roles(method: str, route: APIRoute, resources: Resources, http: httpx.AsyncClient,
                              callers: dict[str, dict[str, str] | str]) -> None:
    [permission] = route_permissions(route)
    account = _accounts[id(resources)]
    path = path_with(route, {})
    # an empty object body: a permitted caller gets past the check and fails validation or lookup,
    # so nothing is created; a refused caller is stopped before the body is even read
    raw = b"" if method in ("GET", "DELETE") else b"{}"
    table = {**{role: perms for role, perms in ROLE_PERMISSIONS.items()}, "API_KEY": API_KEY_PERMISSIONS}
    for caller, allowed in table.items():
        if route_auth(route) == "api_key" and caller != "API_KEY":
            continue
        headers = account.signed(method, path, raw) if caller == "API_KEY" else callers[caller]
        reply = await http.request(method, path, content=raw or None,
                                   headers={**headers, "content-type": "application/json"})
        portal_only = caller == "API_KEY" and reply.status_code == 403 and "portal user" in reply.text
        if permission in allowed:
            assert not _refused(reply) and not portal_only, f"{caller} refused {method} {path}: {reply.text}"
        else:
            assert _refused(reply) or portal_only, f"{caller} allowed {method} {path}: {reply.status_code}"


@pytest.mark.parametrize(("method", "route"), [x for x in ADMIN_ROUTES if route_permissions(x[1])],
                         ids=[f"{m} {r.path}" for m, r in ADMIN_ROUTES if route_permissions(r)])
async def test_admin_roles(method: str, route: APIRoute, http: httpx.AsyncClient,
                           callers: dict[str, dict[str, str] | str]) -> None:
    [permission] = route_permissions(route)
    path = path_with(route, {})
    raw = b"" if method in ("GET", "DELETE") else b"{}"
    for role, allowed in ADMIN_ROLE_PERMISSIONS.items():
        headers = callers[f"PLATFORM_{role}"]
        reply = await http.request(method, path, content=raw or None,
                                   headers={**headers, "content-type": "application/json"})  # type: ignore[dict-item]
        if permission in allowed:
            assert not _refused(reply), f"{role} refused {method} {path}"
        else:
            assert _refused(reply), f"{role} allowed {method} {path}: {reply.status_code} {reply.text[:200]}"
        # and no merchant credential ever passes an admin route
        merchant = await http.request(method, path, content=raw or None,
                                      headers={**callers["ADMIN"], "content-type": "application/json"})  # type: ignore[dict-item]
        assert merchant.status_code == 401
