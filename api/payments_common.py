"""Shared by the payment routes (REST and SDK): JSON body parsing and Idempotency-Key replay."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.responses import JSON
from node.auth.principal import MerchantPrincipal
from node.errors import Forbidden
from node.payments import service
from node.payments.schemas import InvalidJSON


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON("malformed request body") from exc


def require(principal: MerchantPrincipal, permission: str) -> None:
    if not principal.can(permission):
        raise Forbidden(f"missing permission {permission}")


async def idempotent(request: Request, session: AsyncSession, principal: MerchantPrincipal, scope: str,
                     run: Callable[[], Awaitable[tuple[int, dict[str, Any]]]], *, subject: str | None = None) -> JSON:
    """Same Idempotency-Key and body -> the stored answer; same key, other body -> 409. ``subject``
    (what the request acts on, e.g. the payment a refund is for) must match too."""
    key = request.headers.get("idempotency-key")
    if key is None:
        status, body = await run()
        return JSON(body, status_code=status)
    raw = await request.body()
    digest = hashlib.sha256(raw if subject is None else subject.encode() + b"\n" + raw).hexdigest()
    stored = await service.idempotent_claim(session, principal.merchant_id, scope, key, digest)
    if stored is not None and stored[0]:
        return JSON(stored[1], status_code=stored[0], headers={"Idempotent-Replayed": "true"})
    status, body = await run()
    await service.idempotent_store(session, principal.merchant_id, scope, key, status, body)
    return JSON(body, status_code=status)
