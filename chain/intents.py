"""EIP-712 payment intents: build, hash, sign and recover exactly as ``OpenPayGateway`` does.

Ids: ``merchantId`` is a UUID as bytes32 (:func:`uuid_to_bytes32`: the 16 UUID bytes
left-padded with zeros). ``paymentId`` is :func:`payment_id`: the UUID in the low 16 bytes and a
node-allocated sequence number in the high 16 (cheaper replay protection on chain).
``fiat_amount`` is LKR cents, ``rate`` is LKR per USDT with 8 decimals (:data:`RATE_DECIMALS`),
``deadline`` unix seconds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_account import Account
from eth_keys.datatypes import Signature
from eth_utils.address import to_checksum_address

from chain.errors import ChainError
from chain.hashing import keccak

DOMAIN_NAME = "OpenPayGateway"
DOMAIN_VERSION = "1"
RATE_DECIMALS = 8
UINT256_MAX = 2**256 - 1

EIP712_DOMAIN_TYPEHASH = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
PAYMENT_INTENT_TYPE = (
    "PaymentIntent(bytes32 paymentId,bytes32 merchantId,address token,uint256 amount,uint256 fee,"
    "uint256 fiatAmount,uint256 rate,uint256 deadline)"
)
PAYMENT_INTENT_TYPEHASH = keccak(PAYMENT_INTENT_TYPE.encode())
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class InvalidIntent(ChainError):
    """A field is out of range (ids must be 32 bytes, integers uint256, fee <= amount)."""


class InvalidSignature(ChainError):
    """A signature is malformed or does not recover."""


def uuid_to_bytes32(value: uuid.UUID) -> bytes:
    """A UUID as bytes32: 16 zero bytes then the UUID's 16 bytes."""
    return bytes(16) + value.bytes


def payment_id(value: uuid.UUID, sequence: int = 0) -> bytes:
    """A payment's bytes32 id: ``sequence`` (uint128) in the high 16 bytes, the UUID in the low 16.

    The gateway's replay protection is per sequence number, stored 256 to a storage word: a
    sequence the node allocates uniquely per gateway (a database sequence) makes ``pay`` about
    17k gas cheaper than a zero sequence (one storage slot per id). Never reuse a non-zero
    sequence number for another payment: only one of the two could be paid.
    """
    if not 0 <= sequence < 2**128:
        raise InvalidIntent(f"sequence must be a uint128, got {sequence}")
    return sequence.to_bytes(16, "big") + value.bytes


def payment_id_parts(value: bytes) -> tuple[int, uuid.UUID]:
    """``(sequence, uuid)`` of a payment id made by :func:`payment_id`."""
    if len(value) != 32:
        raise InvalidIntent(f"payment id must be 32 bytes, got {len(value)}")
    return int.from_bytes(value[:16], "big"), uuid.UUID(bytes=value[16:])


def bytes32_to_uuid(value: bytes) -> uuid.UUID:
    """Inverse of :func:`uuid_to_bytes32`."""
    if len(value) != 32 or any(value[:16]):
        raise InvalidIntent(f"not a UUID-derived bytes32: 0x{value.hex()}")
    return uuid.UUID(bytes=value[16:])


def rate_to_fixed(rate: Decimal) -> int:
    """LKR per USDT as the contracts' 8-decimal fixed point (rounded down)."""
    return int(rate.scaleb(RATE_DECIMALS).to_integral_value(rounding="ROUND_FLOOR"))


def fixed_to_rate(value: int) -> Decimal:
    return Decimal(value).scaleb(-RATE_DECIMALS)


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_bytes(address: str) -> bytes:
    raw = bytes.fromhex(address[2:] if address[:2] in ("0x", "0X") else address)
    if len(raw) != 20:
        raise InvalidIntent(f"not an address: {address!r}")
    return raw


@dataclass(frozen=True)
class IntentDomain:
    """The gateway's EIP-712 domain: name ``OpenPayGateway``, version ``1``."""

    chain_id: int
    verifying_contract: str

    @property
    def separator(self) -> bytes:
        return keccak(
            EIP712_DOMAIN_TYPEHASH
            + keccak(DOMAIN_NAME.encode())
            + keccak(DOMAIN_VERSION.encode())
            + _word(self.chain_id)
            + bytes(12) + _address_bytes(self.verifying_contract)
        )


@dataclass(frozen=True)
class PaymentIntent:
    """What the customer is asked to pay; mirrors the Solidity ``PaymentIntent`` struct."""

    payment_id: bytes
    merchant_id: bytes
    token: str
    amount: int
    fee: int
    fiat_amount: int
    rate: int
    deadline: int

    def __post_init__(self) -> None:
        if len(self.payment_id) != 32 or len(self.merchant_id) != 32:
            raise InvalidIntent("payment_id and merchant_id must be 32 bytes")
        _address_bytes(self.token)
        for name in ("amount", "fee", "fiat_amount", "rate", "deadline"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= UINT256_MAX:
                raise InvalidIntent(f"{name} must be a uint256, got {value!r}")

    def struct_hash(self) -> bytes:
        """``hashStruct(PaymentIntent)`` of EIP-712."""
        return keccak(
            PAYMENT_INTENT_TYPEHASH
            + self.payment_id
            + self.merchant_id
            + bytes(12) + _address_bytes(self.token)
            + _word(self.amount)
            + _word(self.fee)
            + _word(self.fiat_amount)
            + _word(self.rate)
            + _word(self.deadline)
        )

    def digest(self, domain: IntentDomain) -> bytes:
        """The EIP-712 digest: what an OPERATOR signs and the deposit address's CREATE2 salt."""
        return keccak(b"\x19\x01" + domain.separator + self.struct_hash())

    def as_tuple(self) -> tuple[bytes, bytes, str, int, int, int, int, int]:
        """ABI tuple for contract calls (``pay``, ``sweep``, ``hashIntent``)."""
        return (
            self.payment_id, self.merchant_id, to_checksum_address(self.token),
            self.amount, self.fee, self.fiat_amount, self.rate, self.deadline,
        )

    def typed_data(self, domain: IntentDomain) -> dict[str, Any]:
        """The full EIP-712 JSON (for wallets' ``eth_signTypedData_v4``)."""
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "PaymentIntent": [
                    {"name": "paymentId", "type": "bytes32"},
                    {"name": "merchantId", "type": "bytes32"},
                    {"name": "token", "type": "address"},
                    {"name": "amount", "type": "uint256"},
                    {"name": "fee", "type": "uint256"},
                    {"name": "fiatAmount", "type": "uint256"},
                    {"name": "rate", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ],
            },
            "primaryType": "PaymentIntent",
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": domain.chain_id,
                "verifyingContract": to_checksum_address(domain.verifying_contract),
            },
            "message": {
                "paymentId": "0x" + self.payment_id.hex(),
                "merchantId": "0x" + self.merchant_id.hex(),
                "token": to_checksum_address(self.token),
                "amount": self.amount,
                "fee": self.fee,
                "fiatAmount": self.fiat_amount,
                "rate": self.rate,
                "deadline": self.deadline,
            },
        }


def sign_intent(intent: PaymentIntent, domain: IntentDomain, private_key: bytes | str) -> bytes:
    """65-byte ``r || s || v`` signature (v = 27/28) of the intent's EIP-712 digest."""
    signed = Account.unsafe_sign_hash(intent.digest(domain), private_key)
    return bytes(signed.signature)


def recover_signer(intent: PaymentIntent, domain: IntentDomain, signature: bytes) -> str:
    """The checksummed address that signed ``intent``; rejects what the contract rejects.

    Like OpenZeppelin's ECDSA: 65 bytes, v in {27, 28}, s in the lower half of the curve.
    """
    if len(signature) != 65:
        raise InvalidSignature(f"signature must be 65 bytes, got {len(signature)}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28) or s > SECP256K1_N // 2 or not 0 < r < SECP256K1_N or s == 0:
        raise InvalidSignature("malformed or malleable signature")
    try:
        public_key = Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(
            intent.digest(domain)
        )
    except Exception as exc:  # eth_keys raises several types for points off the curve
        raise InvalidSignature(str(exc)) from exc
    return public_key.to_checksum_address()
