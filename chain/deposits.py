"""Deposit addresses: per-payment CREATE2 addresses of the gateway.

An address is ``CREATE2(gateway, salt = the intent's EIP-712 digest, keccak256(DEPOSIT_INITCODE))``,
so it commits to every field of the intent (merchant, token, amount, fee, fiat amount, rate,
deadline) before the customer pays. Nothing is deployed there until a sweep: the gateway then
runs :data:`DEPOSIT_INITCODE` at the address, whose constructor forwards the tokens to the
gateway and self-destructs in the same transaction (the account is deleted again, EIP-6780), so
the address can be swept again later. See ``contracts/OpenPayDepositForwarder.sol``.
"""

from __future__ import annotations

import functools

from eth_utils.address import to_checksum_address

from chain.hashing import keccak
from chain.intents import IntentDomain, PaymentIntent

DEPOSIT_INITCODE = bytes.fromhex(
    "63e76f4ffc5f52604060206004601c335afa6020513360205263a9059cbb5f5260205f6044601c5f855af1"
    "3d155f5160011417168216603c575f5ffd5b33ff"
)
"""The deposit constructor (``OpenPayDepositForwarder.INITCODE``), the same for every gateway."""
DEPOSIT_INITCODE_HASH = keccak(DEPOSIT_INITCODE)
"""What the gateway's ``DEPOSIT_INITCODE_HASH()`` returns and ``Deployment.forwarder_implementation`` holds."""

_CLONE_PREFIX = bytes.fromhex("3d602d80600a3d3981f3363d3d373d3d3d363d73")
_CLONE_SUFFIX = bytes.fromhex("5af43d82803e903d91602b57fd5bf3")


def _hex_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    return bytes.fromhex(value[2:] if value[:2] in ("0x", "0X") else value)


def _address(value: str) -> bytes:
    raw = _hex_bytes(value)
    if len(raw) != 20:
        raise ValueError(f"not an address: {value!r}")
    return raw


def clone_init_code(implementation: str) -> bytes:
    """EIP-1167 creation code of a minimal proxy to ``implementation`` (gateways before the
    self-destructing deposit constructor cloned a forwarder implementation)."""
    return _CLONE_PREFIX + _address(implementation) + _CLONE_SUFFIX


def create2_address(deployer: str, salt: bytes, init_code_hash: bytes) -> str:
    """``keccak256(0xff ++ deployer ++ salt ++ keccak256(init_code))[12:]``, checksummed."""
    return to_checksum_address(_create2(deployer, salt, init_code_hash))


def _create2(deployer: str, salt: bytes, init_code_hash: bytes) -> bytes:
    if len(salt) != 32:
        raise ValueError("salt must be 32 bytes")
    if len(init_code_hash) != 32:
        raise ValueError("init code hash must be 32 bytes")
    return keccak(b"\xff" + _address(deployer) + salt + init_code_hash)[12:]


@functools.lru_cache(maxsize=16)
def initcode_hash(implementation: str | bytes | None = None) -> bytes:
    """The init code hash deposit addresses use, from what a ``Deployment`` records in
    ``forwarder_implementation``: a 32-byte init code hash (current gateways; None means
    :data:`DEPOSIT_INITCODE_HASH`), or a 20-byte EIP-1167 implementation address (older gateways)."""
    if implementation is None:
        return DEPOSIT_INITCODE_HASH
    raw = _hex_bytes(implementation)
    if len(raw) == 32:
        return raw
    if len(raw) == 20:
        return keccak(_CLONE_PREFIX + raw + _CLONE_SUFFIX)
    raise ValueError(f"neither an init code hash nor an implementation address: {implementation!r}")


def predict_deposit_address(gateway: str, implementation: str | bytes | None, salt: bytes) -> str:
    """The deposit address ``gateway`` creates with ``salt`` (see :func:`initcode_hash`)."""
    return create2_address(gateway, salt, initcode_hash(implementation))


def predict_deposit_address_lower(gateway: str, implementation: str | bytes | None, salt: bytes) -> str:
    """:func:`predict_deposit_address` in lowercase, as the node stores it: without the checksum's
    second hash, which costs more than the address itself."""
    return "0x" + _create2(gateway, salt, initcode_hash(implementation)).hex()


def deposit_address(intent: PaymentIntent, domain: IntentDomain, implementation: str | bytes | None = None) -> str:
    """The deposit address of ``intent`` on the gateway at ``domain.verifying_contract``.

    ``implementation`` is the deployment's ``forwarder_implementation`` (the name predates the
    current design): the gateway's deposit init code hash, see :func:`initcode_hash`.
    """
    return predict_deposit_address(domain.verifying_contract, implementation, intent.digest(domain))
