"""API keys: created live or test, the secret shown once, revoked at once.

Stored as the wire protocol requires: the HMAC key is the hex SHA-256 of the whole
secret, which is all a verifier needs and so also all a signer needs (original
defect 12). We cannot avoid holding it, so it is sealed with the node's
``secrets_key`` (AES-256-GCM, node/auth/secrets.py): a database dump alone signs
nothing. Nothing else about the secret is stored besides its last four characters.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin import audit
from node.auth.context import RequestMeta
from node.auth.hmac_signing import hmac_key_hex, new_key_pair
from node.auth.principal import MerchantPrincipal
from node.auth.secrets import SecretBox
from node.config import Settings
from node.errors import NotFound, ValidationFailed
from node.merchants import auth_cache
from node.merchants import repository as repo
from node.merchants.models import ApiKey

HMAC_CONTEXT = "api-key-hmac"


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    secret: str

    @property
    def sdk_credential(self) -> str:
        """What the SDKs take: ``<keyId>.<secret>``."""
        return f"{self.key.key_id}.{self.secret}"


def _clean_ips(ips: list[str] | None) -> list[str]:
    cleaned = []
    for ip in ips or []:
        try:
            cleaned.append(str(ipaddress.ip_network(ip.strip(), strict=False)))
        except ValueError:
            raise ValidationFailed(f"allowedIps: not an IP address or network: {ip[:60]}") from None
    if len(cleaned) > 50:
        raise ValidationFailed("allowedIps: at most 50 entries")
    return cleaned


async def create_key(
    session: AsyncSession, settings: Settings, merchant_id: uuid.UUID, *, mode: Literal["live", "test"],
    name: str = "default", allowed_ips: list[str] | None = None, created_by: uuid.UUID | None = None,
    meta: RequestMeta | None = None, actor_type: audit.ActorType = "MERCHANT_USER",
) -> CreatedKey:
    key_id, secret = new_key_pair(mode)
    sealed = SecretBox.from_settings(settings).seal(hmac_key_hex(secret), context=HMAC_CONTEXT)
    key_pk = uuid.uuid4()
    row = (await session.execute(insert(ApiKey).values(
        id=key_pk, merchant_id=merchant_id, key_id=key_id, mode=mode, name=name.strip() or "default",
        hmac_key=sealed, secret_hint=secret[-4:], allowed_ips=_clean_ips(allowed_ips), created_by=created_by,
    ).returning(ApiKey))).scalar_one()
    await audit.record(session, action="api_key.created", actor_type=actor_type, actor_id=created_by,
                       merchant_id=merchant_id, resource_type="api_key", resource_id=key_pk,
                       details={"keyId": key_id, "mode": mode, "name": row.name}, meta=meta)
    return CreatedKey(row, secret)


async def revoke_key(
    session: AsyncSession, merchant_id: uuid.UUID, key_pk: uuid.UUID, *, reason: str | None,
    actor_id: uuid.UUID | None, meta: RequestMeta | None = None, actor_type: audit.ActorType = "MERCHANT_USER",
) -> ApiKey:
    key = await repo.get_key(session, merchant_id, key_pk)
    if key is None:
        raise NotFound("API key not found")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        key.revoked_reason = (reason or "").strip()[:500] or None
        await session.flush()
        auth_cache.changed(session, merchant_id)
        await audit.record(session, action="api_key.revoked", actor_type=actor_type, actor_id=actor_id,
                           merchant_id=merchant_id, resource_type="api_key", resource_id=key.id,
                           details={"keyId": key.key_id, "reason": key.revoked_reason}, meta=meta)
    return key


def open_hmac_key(settings: Settings, sealed: str) -> str:
    return SecretBox.from_settings(settings).open(sealed, context=HMAC_CONTEXT)


def ip_allowed(allowed: list[str], ip: str | None) -> bool:
    if not allowed:
        return True
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in allowed)


def principal_for_key(key: repo.KeyForAuth) -> MerchantPrincipal:
    from node.auth.principal import API_KEY_PERMISSIONS

    return MerchantPrincipal(
        merchant_id=key.merchant_id, user_id=None, role=None, branch_id=None,
        mode="live" if key.mode == "live" else "test", api_key_id=key.id,
        permissions=API_KEY_PERMISSIONS, kyc_status=key.kyc_status,
    )
