"""FastAPI dependencies as ``Annotated`` aliases.

Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread,
a thread hop per dependency per request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin import accounts as admin_accounts
from node.auth.context import RequestMeta as NodeRequestMeta
from node.auth.hmac_signing import MISSING_HEADERS
from node.auth.principal import (
    ADMIN_ROLE_PERMISSIONS,
    ROLE_PERMISSIONS,
    AdminPrincipal,
    MerchantPrincipal,
    Mode,
)
from node.auth.tokens import ADMIN_AUDIENCE, MERCHANT_AUDIENCE, decode_jwt, subject_of
from node.config import Settings as NodeSettings
from node.errors import Forbidden, Unauthorized
from node.merchants import hmac_auth
from node.merchants import repository as merchants_repo
from node.ratelimit import Decision, RateLimiter
from node.resources import Resources as NodeResources


async def _resources(request: Request) -> NodeResources:
    resources: NodeResources = request.app.state.resources
    return resources


async def _settings(request: Request) -> NodeSettings:
    settings: NodeSettings = request.app.state.settings
    return settings


async def _session(resources: Annotated[NodeResources, Depends(_resources)]) -> AsyncIterator[AsyncSession]:
    """The request owns the transaction: it commits once when the route returns, before the
    response is sent (``scope="function"``), so a failed commit is an error, never a 2xx."""
    async with resources.db.unit_of_work() as session:
        yield session


Resources = Annotated[NodeResources, Depends(_resources)]
Settings = Annotated[NodeSettings, Depends(_settings)]
Session = Annotated[AsyncSession, Depends(_session, scope="function")]


# --- authentication and authorisation (accounts) -------------------------------------------------
# CurrentMerchant: a portal user (Bearer access JWT) or an API key (HMAC headers, wire protocol).
# ApiKeyMerchant: HMAC only (the SDK routes). require_permission("payments:write") for merchant
# routes; AdminUser + require_admin_permission("merchants:approve") for admin routes.


def client_ip(request: Request) -> str | None:
    """The peer address; X-Forwarded-For is believed only from ``settings.trusted_proxies``
    (the original trusted any client's header: defect 13)."""
    peer = request.client.host if request.client else None
    settings: NodeSettings = request.app.state.settings
    if peer is None or peer not in settings.trusted_proxies:
        return peer
    forwarded = [part.strip() for part in request.headers.get("x-forwarded-for", "").split(",") if part.strip()]
    for hop in reversed(forwarded):
        if hop not in settings.trusted_proxies:
            return hop
    return peer


async def _meta(request: Request) -> NodeRequestMeta:
    return NodeRequestMeta(ip=client_ip(request), user_agent=request.headers.get("user-agent"))


RequestMeta = Annotated[NodeRequestMeta, Depends(_meta)]


async def _limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        resources: NodeResources = request.app.state.resources
        limiter = RateLimiter(resources.scripts, request.app.state.settings)
        request.app.state.rate_limiter = limiter
    return limiter


Limiter = Annotated[RateLimiter, Depends(_limiter)]


def rate_limit(group: str) -> Callable[..., Awaitable[None]]:
    """Per client IP limit for unauthenticated route groups (login, public pages)."""

    async def check(request: Request, response: Response, limiter: Limiter) -> None:
        decision = await limiter.check(group, client_ip(request) or "unknown")
        if decision is not None:
            response.headers.update(decision.headers())

    return check


def _signed_path(request: Request) -> str:
    # the path exactly as sent, plus the raw query string: nothing re-encoded or sorted
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    query: bytes = request.scope.get("query_string") or b""
    path = raw.decode("latin-1").split("?", 1)[0]
    return path + ("?" + query.decode("latin-1") if query else "")


async def hmac_principal(request: Request, session: AsyncSession) -> tuple[MerchantPrincipal, Decision | None]:
    """The API key's merchant and its rate-limit decision; a plain call, for the hot route that
    resolves no dependencies."""
    resources: NodeResources = request.app.state.resources
    key_id, timestamp, given_signature = _signature_headers(request)
    return await hmac_auth.authenticate(
        session, resources.scripts, resources.settings, key_id=key_id,
        timestamp=timestamp, given_signature=given_signature,
        method=request.method, path=_signed_path(request), body=await request.body(),
        client_ip=client_ip(request), limiter=await _limiter(request),
    )


_SIGNATURE_HEADERS = {b"x-api-key": 0, b"x-timestamp": 1, b"x-signature": 2}


def _signature_headers(request: Request) -> list[str | None]:
    """x-api-key, x-timestamp, x-signature (the first of each, as ``request.headers`` gives): one
    pass over the raw headers instead of a scan per name."""
    found: list[str | None] = [None, None, None]
    for name, value in request.scope["headers"]:
        at = _SIGNATURE_HEADERS.get(name)
        if at is not None and found[at] is None:
            found[at] = value.decode("latin-1")
    return found


async def _hmac_principal(request: Request, response: Response, session: AsyncSession) -> MerchantPrincipal:
    principal, decision = await hmac_principal(request, session)
    if decision is not None:
        response.headers.update(decision.headers())
    return principal


async def _jwt_principal(request: Request, token: str, session: AsyncSession,
                         settings: NodeSettings) -> MerchantPrincipal:
    claims = decode_jwt(settings, token, audience=MERCHANT_AUDIENCE)
    # role, branch and merchant status come from the database, so a role change, a deactivated
    # user or a suspended merchant takes effect at the next request, not when the token expires
    caller = await merchants_repo.active_portal_caller(session, subject_of(claims))
    if caller is None:
        raise Unauthorized("invalid token")
    mode: Mode = "test" if request.headers.get("x-openpay-mode", "").lower() == "test" else "live"
    return MerchantPrincipal(
        merchant_id=caller.merchant_id, user_id=caller.user_id, role=caller.role,  # type: ignore[arg-type]
        branch_id=caller.branch_id, mode=mode, api_key_id=None,
        permissions=ROLE_PERMISSIONS.get(caller.role, frozenset()), kyc_status=caller.kyc_status,
    )


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _limit_principal(limiter: RateLimiter, response: Response, principal: MerchantPrincipal) -> None:
    subject = f"key:{principal.api_key_id}" if principal.api_key_id else f"user:{principal.user_id}"
    decision = await limiter.check("api", subject)
    if decision is not None:
        response.headers.update(decision.headers())


async def _current_merchant(request: Request, response: Response, session: Session) -> MerchantPrincipal:
    # resources and limiter straight from the app: each declared dependency costs every request
    if any(h in request.headers for h in ("x-api-key", "x-signature", "x-timestamp")):
        return await _hmac_principal(request, response, session)
    resources, limiter = await _resources(request), await _limiter(request)
    token = _bearer(request)
    if token is None:
        raise Unauthorized("missing credentials: a Bearer token or API key signature headers")
    principal = await _jwt_principal(request, token, session, resources.settings)
    await _limit_principal(limiter, response, principal)
    return principal


async def _api_key_merchant(request: Request, response: Response, session: Session) -> MerchantPrincipal:
    refuse_bearer_for_api_key_route(request)
    return await _hmac_principal(request, response, session)


def refuse_bearer_for_api_key_route(request: Request) -> None:
    if _bearer(request) is not None and "x-api-key" not in request.headers:
        raise Unauthorized(MISSING_HEADERS)


CurrentMerchant = Annotated[MerchantPrincipal, Depends(_current_merchant)]
ApiKeyMerchant = Annotated[MerchantPrincipal, Depends(_api_key_merchant)]


def require_permission(permission: str) -> Callable[..., Awaitable[MerchantPrincipal]]:
    """A dependency for merchant routes: the caller (JWT or API key) must hold ``permission``.

    Use as ``principal: Annotated[MerchantPrincipal, Depends(require_permission("payments:write"))]``.
    """

    async def check(principal: CurrentMerchant) -> MerchantPrincipal:
        if not principal.can(permission):
            raise Forbidden(f"missing permission {permission}")
        return principal

    check.permission = permission  # type: ignore[attr-defined]  # read by the permission tests
    return check


def require_portal_permission(permission: str) -> Callable[..., Awaitable[MerchantPrincipal]]:
    """Like ``require_permission`` but for portal users only (JWT): team, keys, KYC, security."""

    async def check(principal: CurrentMerchant) -> MerchantPrincipal:
        if principal.user_id is None:
            raise Forbidden("this route needs a portal user, not an API key")
        if not principal.can(permission):
            raise Forbidden(f"missing permission {permission}")
        return principal

    check.permission = permission  # type: ignore[attr-defined]
    return check


PASSWORD_CHANGE_PATHS = frozenset({"/v1/admin/auth/change-password", "/v1/admin/auth/me",
                                   "/v1/admin/auth/logout"})


async def _admin_user(request: Request, response: Response, session: Session, settings: Settings,
                      limiter: Limiter) -> AdminPrincipal:
    token = _bearer(request)
    if token is None:
        raise Unauthorized("missing Bearer token")
    claims = decode_jwt(settings, token, audience=ADMIN_AUDIENCE)
    admin = await admin_accounts.get(session, subject_of(claims))
    if admin is None or not admin.is_active:
        raise Unauthorized("invalid token")
    if admin.must_change_password and request.scope["path"] not in PASSWORD_CHANGE_PATHS:
        raise admin_accounts.PasswordChangeRequired("change your password first")
    decision = await limiter.check("admin", f"admin:{admin.id}")
    if decision is not None:
        response.headers.update(decision.headers())
    return AdminPrincipal(admin_id=admin.id, email=admin.email, role=admin.role,  # type: ignore[arg-type]
                          permissions=ADMIN_ROLE_PERMISSIONS.get(admin.role, frozenset()))


AdminUser = Annotated[AdminPrincipal, Depends(_admin_user)]


def require_admin_permission(permission: str) -> Callable[..., Awaitable[AdminPrincipal]]:
    """A dependency for admin routes: ``Depends(require_admin_permission("merchants:approve"))``."""

    async def check(admin: AdminUser) -> AdminPrincipal:
        if not admin.can(permission):
            raise Forbidden(f"missing admin permission {permission}")
        return admin

    check.permission = permission  # type: ignore[attr-defined]
    return check
