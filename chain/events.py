"""Typed events of our contracts (and ERC-20 ``Transfer``/``Approval``) decoded from raw logs.

Input is a log exactly as JSON-RPC ``eth_getLogs`` returns it (hex strings). Each event has a
decoder generated from its Solidity declaration for its fixed layout: it slices the 32-byte
words out of ``topics``/``data`` and converts them with ``int(x, 16)``/``bytes.fromhex`` —
no ABI machinery per log (checked against eth-abi by a property test).

Conventions of the decoded values: addresses are lowercase ``0x`` hex strings (checksumming
costs a keccak per address; compare with ``.lower()``), ``bytes32`` values are ``bytes``,
integers are ``int``, block and transaction hashes are the node's ``0x`` hex strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from eth_utils.crypto import keccak

from chain.errors import ChainError

RawLog = Mapping[str, Any]


class EventDecodeError(ChainError):
    """A log with a known topic0 whose topics or data do not fit the event's layout."""


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """Where a log came from; every event carries it. ``(block_hash, log_index)`` is unique per chain."""

    address: str
    block_number: int
    block_hash: str
    transaction_hash: str
    log_index: int

    SIGNATURE = ""
    TOPIC0 = ""


E = TypeVar("E", bound=type[ChainEvent])
Decoder = Callable[[RawLog], ChainEvent]

DECODERS: dict[str, Decoder] = {}
"""topic0 (lowercase ``0x`` hex) -> decoder."""
EVENT_TYPES: dict[str, type[ChainEvent]] = {}
"""Event class name -> class."""

_PARAM = re.compile(r"^\s*(\w+)(\s+indexed)?\s+(\w+)\s*$")
_META = ("address", "block_number", "block_hash", "transaction_hash", "log_index")


def _converter(sol_type: str, expr: str) -> str:
    if sol_type == "address":
        return f"('0x' + {expr}[24:64]).lower()" if "d[" in expr else f"('0x' + {expr}[26:66]).lower()"
    if sol_type == "bytes32":
        return f"_fromhex({expr})" if "d[" in expr else f"_fromhex({expr}[2:])"
    if sol_type == "bool":
        return f"int({expr}, 16) != 0"
    if re.fullmatch(r"uint\d*", sol_type):
        return f"int({expr}, 16)"
    if re.fullmatch(r"int\d*", sol_type):
        return f"_signed(int({expr}, 16))"
    raise ValueError(f"no fixed-layout decoder for {sol_type}")


def _signed(value: int) -> int:
    return value - (1 << 256) if value >> 255 else value


def event(declaration: str) -> Callable[[E], E]:
    """Registers a dataclass as the decoded form of ``declaration`` (Solidity event syntax).

    The dataclass's own fields, after the log metadata, must be the event's parameters in
    declaration order.
    """

    def register(cls: E) -> E:
        name, _, rest = declaration.partition("(")
        params = [_PARAM.match(p) for p in rest.rstrip(")").split(",")] if rest.rstrip(")") else []
        if not all(params):
            raise ValueError(f"cannot parse {declaration!r}")
        parsed = [(m.group(1), bool(m.group(2))) for m in params if m]
        own = [f.name for f in fields(cls)][len(_META):]
        if len(own) != len(parsed) or cls.__name__ != name:
            raise ValueError(f"{cls.__name__} fields do not match {declaration!r}")
        signature = f"{name}({','.join(t for t, _ in parsed)})"
        topic0 = "0x" + keccak(text=signature).hex()
        n_topics = 1 + sum(indexed for _, indexed in parsed)
        n_words = len(parsed) + 1 - n_topics
        args = [
            "log['address'].lower()",
            "int(log['blockNumber'], 16)",
            "log['blockHash']",
            "log['transactionHash']",
            "int(log['logIndex'], 16)",
        ]
        topic, word = 1, 0
        for sol_type, indexed in parsed:
            if indexed:
                args.append(_converter(sol_type, f"t[{topic}]"))
                topic += 1
            else:
                args.append(_converter(sol_type, f"d[{2 + 64 * word}:{66 + 64 * word}]"))
                word += 1
        names = [f.name for f in fields(cls)]
        # Frozen dataclasses set fields through object.__setattr__ (~0.1 us each); writing the
        # slots through their descriptors is twice as fast and still leaves the instance frozen.
        setters = {f"_set_{n}": getattr(cls, n).__set__ for n in names}
        assigns = "".join(f"    _set_{n}(o, {a})\n" for n, a in zip(names, args, strict=True))
        source = (
            "def decode(log):\n"
            "    t = log['topics']\n"
            "    d = log['data']\n"
            f"    if len(t) != {n_topics} or len(d) != {2 + 64 * n_words}:\n"
            "        raise _Error(f'{_name}: expected "
            f"{n_topics} topics and {n_words} data words, got {{len(t)}} topics, {{len(d)}} data chars')\n"
            "    o = _new(_cls)\n"
            f"{assigns}"
            "    return o\n"
        )
        namespace: dict[str, Any] = {
            "_cls": cls, "_new": object.__new__, "_fromhex": bytes.fromhex, "_signed": _signed,
            "_Error": EventDecodeError, "_name": name, **setters,
        }
        exec(compile(source, f"<decoder {name}>", "exec"), namespace)  # noqa: S102 - generated from a literal
        cls.SIGNATURE = signature
        cls.TOPIC0 = topic0
        DECODERS[topic0] = namespace["decode"]
        EVENT_TYPES[name] = cls
        return cls

    return register


# --------------------------------------------------------------------------- gateway


@event("PaymentReceived(bytes32 indexed paymentId, bytes32 indexed merchantId, address indexed payer,"
       " address token, uint256 amount, uint256 fee, uint256 fiatAmount, uint256 rate)")
@dataclass(frozen=True, slots=True)
class PaymentReceived(ChainEvent):
    payment_id: bytes
    merchant_id: bytes
    payer: str
    token: str
    amount: int
    fee: int
    fiat_amount: int
    rate: int


@event("DepositSwept(bytes32 indexed paymentId, bytes32 indexed merchantId, address indexed depositAddress,"
       " address token, uint256 amount, uint256 fee, uint256 fiatAmount, uint256 rate, uint256 deadline,"
       " uint256 received, uint256 feeCharged)")
@dataclass(frozen=True, slots=True)
class DepositSwept(ChainEvent):
    """``amount``/``fee``/... are the intent's; ``received`` arrived, ``fee_charged`` went to the treasury."""

    payment_id: bytes
    merchant_id: bytes
    deposit_address: str
    token: str
    amount: int
    fee: int
    fiat_amount: int
    rate: int
    deadline: int
    received: int
    fee_charged: int


@event("Collected(bytes32 indexed merchantId, address indexed token, address indexed collector,"
       " uint256 amount, uint256 fee)")
@dataclass(frozen=True, slots=True)
class Collected(ChainEvent):
    """Subscription money credited in the gateway (the subscriptions contract also emits ``Charged``)."""

    merchant_id: bytes
    token: str
    collector: str
    amount: int
    fee: int


@event("Withdrawal(bytes32 indexed merchantId, address indexed token, address indexed to, uint256 amount)")
@dataclass(frozen=True, slots=True)
class Withdrawal(ChainEvent):
    merchant_id: bytes
    token: str
    to: str
    amount: int


@event("SettlementInitiated(bytes32 indexed merchantId, address indexed token, bytes32 indexed settlementRef,"
       " uint256 amount, uint256 rate, uint256 fiatAmount)")
@dataclass(frozen=True, slots=True)
class SettlementInitiated(ChainEvent):
    merchant_id: bytes
    token: str
    settlement_ref: bytes
    amount: int
    rate: int
    fiat_amount: int


@event("Refunded(bytes32 indexed paymentId, bytes32 indexed merchantId, address indexed to,"
       " address token, uint256 amount)")
@dataclass(frozen=True, slots=True)
class Refunded(ChainEvent):
    payment_id: bytes
    merchant_id: bytes
    to: str
    token: str
    amount: int


@event("TreasuryWithdrawal(address indexed token, address indexed to, uint256 amount)")
@dataclass(frozen=True, slots=True)
class TreasuryWithdrawal(ChainEvent):
    token: str
    to: str
    amount: int


@event("PayoutAddressSet(bytes32 indexed merchantId, address indexed payoutAddress)")
@dataclass(frozen=True, slots=True)
class PayoutAddressSet(ChainEvent):
    merchant_id: bytes
    payout_address: str


@event("TokenAllowed(address indexed token, bool allowed)")
@dataclass(frozen=True, slots=True)
class TokenAllowed(ChainEvent):
    token: str
    allowed: bool


@event("Paused(address account)")
@dataclass(frozen=True, slots=True)
class Paused(ChainEvent):
    account: str


@event("Unpaused(address account)")
@dataclass(frozen=True, slots=True)
class Unpaused(ChainEvent):
    account: str


@event("RoleGranted(bytes32 indexed role, address indexed account, address indexed sender)")
@dataclass(frozen=True, slots=True)
class RoleGranted(ChainEvent):
    role: bytes
    account: str
    sender: str


@event("RoleRevoked(bytes32 indexed role, address indexed account, address indexed sender)")
@dataclass(frozen=True, slots=True)
class RoleRevoked(ChainEvent):
    role: bytes
    account: str
    sender: str


# --------------------------------------------------------------------------- subscriptions


@event("PlanCreated(uint256 indexed planId, bytes32 indexed merchantId, address indexed token,"
       " uint256 maxAmountPerPeriod, uint256 period, uint256 trialPeriod, uint256 feeBps)")
@dataclass(frozen=True, slots=True)
class PlanCreated(ChainEvent):
    plan_id: int
    merchant_id: bytes
    token: str
    max_amount_per_period: int
    period: int
    trial_period: int
    fee_bps: int


@event("PlanActiveSet(uint256 indexed planId, bool active)")
@dataclass(frozen=True, slots=True)
class PlanActiveSet(ChainEvent):
    plan_id: int
    active: bool


@event("Subscribed(uint256 indexed subscriptionId, uint256 indexed planId, address indexed subscriber,"
       " bytes32 merchantId, uint256 startAt)")
@dataclass(frozen=True, slots=True)
class Subscribed(ChainEvent):
    subscription_id: int
    plan_id: int
    subscriber: str
    merchant_id: bytes
    start_at: int


@event("Charged(uint256 indexed subscriptionId, uint256 indexed planId, bytes32 indexed merchantId,"
       " address subscriber, address token, uint256 amount, uint256 fee, uint256 period)")
@dataclass(frozen=True, slots=True)
class Charged(ChainEvent):
    subscription_id: int
    plan_id: int
    merchant_id: bytes
    subscriber: str
    token: str
    amount: int
    fee: int
    period: int


CHARGE_FAILURE_REASONS = (
    "not_active", "not_due", "already_charged", "invalid_amount", "token_not_allowed",
    "insufficient_allowance", "insufficient_balance", "transfer_failed",
)
"""``ChargeFailed.reason`` codes, as ``OpenPaySubscriptions.FailureReason`` numbers them."""


@event("ChargeFailed(uint256 indexed subscriptionId, uint256 indexed period, uint8 reason)")
@dataclass(frozen=True, slots=True)
class ChargeFailed(ChainEvent):
    subscription_id: int
    period: int
    reason: int

    @property
    def reason_name(self) -> str:
        return CHARGE_FAILURE_REASONS[self.reason] if self.reason < len(CHARGE_FAILURE_REASONS) else "unknown"


@event("Cancelled(uint256 indexed subscriptionId, address indexed by)")
@dataclass(frozen=True, slots=True)
class Cancelled(ChainEvent):
    subscription_id: int
    by: str


# --------------------------------------------------------------------------- oracle


@event("AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt)")
@dataclass(frozen=True, slots=True)
class AnswerUpdated(ChainEvent):
    current: int
    round_id: int
    updated_at: int


@event("NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt)")
@dataclass(frozen=True, slots=True)
class NewRound(ChainEvent):
    round_id: int
    started_by: str
    started_at: int


# --------------------------------------------------------------------------- ERC-20


@event("Transfer(address indexed from, address indexed to, uint256 value)")
@dataclass(frozen=True, slots=True)
class Transfer(ChainEvent):
    from_address: str
    to_address: str
    value: int


@event("Approval(address indexed owner, address indexed spender, uint256 value)")
@dataclass(frozen=True, slots=True)
class Approval(ChainEvent):
    owner: str
    spender: str
    value: int


GATEWAY_EVENTS: tuple[type[ChainEvent], ...] = (
    PaymentReceived, DepositSwept, Collected, Withdrawal, SettlementInitiated, Refunded,
    TreasuryWithdrawal, PayoutAddressSet, TokenAllowed, Paused, Unpaused, RoleGranted, RoleRevoked,
)
SUBSCRIPTION_EVENTS: tuple[type[ChainEvent], ...] = (
    PlanCreated, PlanActiveSet, Subscribed, Charged, ChargeFailed, Cancelled, RoleGranted, RoleRevoked,
)
ORACLE_EVENTS: tuple[type[ChainEvent], ...] = (AnswerUpdated, NewRound, RoleGranted, RoleRevoked)
TOKEN_EVENTS: tuple[type[ChainEvent], ...] = (Transfer, Approval)


def topics_of(*event_types: type[ChainEvent]) -> list[str]:
    """topic0 values for an ``eth_getLogs`` filter (``"topics": [topics_of(...)]``)."""
    return sorted({t.TOPIC0 for t in event_types})


def decode_log(log: RawLog) -> ChainEvent | None:
    """The typed event of a raw log; ``None`` when its topic0 is not one we know.

    Raises :class:`EventDecodeError` when a known topic0 comes with the wrong layout.
    """
    topics = log.get("topics")
    if not topics:
        return None
    decoder = DECODERS.get(topics[0])
    if decoder is None:
        return None
    try:
        return decoder(log)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise EventDecodeError(f"cannot decode log {log.get('transactionHash')}#{log.get('logIndex')}: {exc}") \
            from exc


def decode_logs(logs: Iterable[RawLog]) -> list[ChainEvent]:
    """Decodes every log whose topic0 we know, in order; unknown logs are skipped."""
    decoders = DECODERS
    out: list[ChainEvent] = []
    append = out.append
    for log in logs:
        topics = log["topics"]
        decoder = decoders.get(topics[0]) if topics else None
        if decoder is not None:
            try:
                append(decoder(log))
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                raise EventDecodeError(
                    f"cannot decode log {log.get('transactionHash')}#{log.get('logIndex')}: {exc}"
                ) from exc
    return out
