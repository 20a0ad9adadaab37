"""The audit log: append-only and hash-chained.

Each row's ``row_hash`` is SHA-256 over the previous row's hash and the row's own
fields in a canonical JSON form, so editing any row breaks its own hash and
deleting one breaks the link of the row after it; ``verify`` walks the chain and
names the first row that does not hold. Appends take a transaction-scoped
advisory lock so concurrent writers chain one after another.
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin.models import AuditLog
from node.auth.context import RequestMeta

GENESIS = "0" * 64
_LOCK_KEY = 0x6F70_6175_6469_74  # "opaudit"
ActorType = Literal["ADMIN", "MERCHANT_USER", "API_KEY", "SYSTEM"]


def _canonical(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def row_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"|" + _canonical(fields)).hexdigest()


def _fields(occurred_at: datetime, actor_type: str, actor_id: str | None, merchant_id: uuid.UUID | None,
            action: str, resource_type: str | None, resource_id: str | None, changes: Any, details: Any,
            ip: str | None, user_agent: str | None) -> dict[str, Any]:
    return {
        "occurredAt": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actorType": actor_type, "actorId": actor_id,
        "merchantId": str(merchant_id) if merchant_id else None, "action": action,
        "resourceType": resource_type, "resourceId": resource_id, "changes": changes, "details": details,
        "ip": ip, "userAgent": user_agent,
    }


def _clean_ip(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


async def record(
    session: AsyncSession, *, action: str, actor_type: ActorType, actor_id: uuid.UUID | str | None = None,
    merchant_id: uuid.UUID | None = None, resource_type: str | None = None, resource_id: object = None,
    changes: dict[str, Any] | None = None, details: dict[str, Any] | None = None,
    meta: RequestMeta | None = None,
) -> None:
    """Append one row in the caller's transaction."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    prev = (await session.execute(
        select(AuditLog.row_hash).order_by(AuditLog.id.desc()).limit(1)
    )).scalar_one_or_none() or GENESIS
    meta = meta or RequestMeta.system()
    # microsecond precision survives the round trip through timestamptz
    occurred_at = datetime.now(UTC)
    values = dict(
        occurred_at=occurred_at, actor_type=actor_type, actor_id=str(actor_id) if actor_id else None,
        merchant_id=merchant_id, action=action, resource_type=resource_type,
        resource_id=str(resource_id) if resource_id is not None else None,
        changes=_jsonable(changes), details=_jsonable(details), ip=_clean_ip(meta.ip),
        user_agent=(meta.user_agent or None) and (meta.user_agent or "")[:500],
    )
    digest = row_hash(prev, _fields(**values))  # type: ignore[arg-type]
    await session.execute(insert(AuditLog).values(**values, prev_hash=prev, row_hash=digest))


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    parsed: dict[str, Any] = orjson.loads(orjson.dumps(value, default=str))
    return parsed


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int
    bad_row_id: int | None = None
    reason: str | None = None


async def verify(session: AsyncSession, *, batch: int = 5000) -> VerifyResult:
    """Walk the chain in id order; the first row whose link or hash fails is named."""
    prev = GENESIS
    last_id = 0
    count = 0
    while True:
        rows = (await session.execute(
            select(AuditLog).where(AuditLog.id > last_id).order_by(AuditLog.id).limit(batch)
        )).scalars().all()
        if not rows:
            return VerifyResult(ok=True, rows=count)
        for row in rows:
            if row.prev_hash != prev:
                return VerifyResult(False, count, row.id, "previous row missing or changed (chain link broken)")
            fields = _fields(row.occurred_at, row.actor_type, row.actor_id, row.merchant_id, row.action,
                             row.resource_type, row.resource_id, row.changes, row.details,
                             str(row.ip) if row.ip is not None else None, row.user_agent)
            if row_hash(prev, fields) != row.row_hash:
                return VerifyResult(False, count, row.id, "row content does not match its hash")
            prev = row.row_hash
            last_id = row.id
            count += 1
