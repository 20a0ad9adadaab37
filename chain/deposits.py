"""Deposit addresses: per-payment EIP-1167 clones created by the gateway with CREATE2.

The clone's salt is the intent's EIP-712 digest, so the address commits to every field of the
intent (merchant, token, amount, fee, fiat amount, rate, deadline) before the customer pays.
"""

from __future__ import annotations

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.intents import IntentDomain, PaymentIntent

_CLONE_PREFIX = bytes.fromhex("3d602d80600a3d3981f3363d3d373d3d3d363d73")
_CLONE_SUFFIX = bytes.fromhex("5af43d82803e903d91602b57fd5bf3")


def _address(value: str) -> bytes:
    raw = bytes.fromhex(value[2:] if value[:2] in ("0x", "0X") else value)
    if len(raw) != 20:
        raise ValueError(f"not an address: {value!r}")
    return raw


def clone_init_code(implementation: str) -> bytes:
    """EIP-1167 creation code of a minimal proxy to ``implementation`` (as OpenZeppelin builds it)."""
    return _CLONE_PREFIX + _address(implementation) + _CLONE_SUFFIX


def create2_address(deployer: str, salt: bytes, init_code_hash: bytes) -> str:
    """``keccak256(0xff ++ deployer ++ salt ++ keccak256(init_code))[12:]``, checksummed."""
    if len(salt) != 32:
        raise ValueError("salt must be 32 bytes")
    return to_checksum_address(keccak(b"\xff" + _address(deployer) + salt + init_code_hash)[12:])


def predict_deposit_address(gateway: str, implementation: str, salt: bytes) -> str:
    """The address ``gateway`` clones ``implementation`` to with ``salt``."""
    return create2_address(gateway, salt, keccak(clone_init_code(implementation)))


def deposit_address(intent: PaymentIntent, domain: IntentDomain, implementation: str) -> str:
    """The deposit address of ``intent`` on the gateway at ``domain.verifying_contract``."""
    return predict_deposit_address(domain.verifying_contract, implementation, intent.digest(domain))
