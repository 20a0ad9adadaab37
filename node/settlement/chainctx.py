"""Which chain, gateway and token settlement works on (from the deployments file)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from chain.deploy import Deployment, deployment_path
from chain.intents import uuid_to_bytes32
from node.config import Settings
from node.errors import ServiceUnavailable


@dataclass(frozen=True)
class GatewayContext:
    chain_id: int
    gateway: str  # lowercase
    token: str  # lowercase: the settlement token (USDT)
    oracle: str

    @staticmethod
    def merchant_key(merchant_id: uuid.UUID) -> bytes:
        return uuid_to_bytes32(merchant_id)


@lru_cache(maxsize=16)
def _load(path: str) -> Deployment:
    return Deployment.load(Path(path))


def gateway_context(settings: Settings) -> GatewayContext:
    path = settings.deployment_file or deployment_path(settings.deployments_dir, settings.chain_id)
    if not Path(path).exists():
        raise ServiceUnavailable("the contracts are not deployed on this node's chain yet",
                                 code="CHAIN_NOT_DEPLOYED")
    deployment = _load(str(path))
    return GatewayContext(deployment.chain_id, deployment.gateway.lower(), deployment.token.lower(),
                          deployment.oracle.lower())


def merchant_of_key(key: bytes) -> uuid.UUID | None:
    """The merchant UUID behind an on-chain bytes32 merchant id (16 zero bytes + UUID)."""
    if len(key) != 32 or any(key[:16]):
        return None
    return uuid.UUID(bytes=key[16:])
