"""Compiled contracts as typed objects, with the ABI helpers the rest of :mod:`chain` uses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from chain.compile import compiled
from chain.errors import ChainError, CompileError

AbiEntry = dict[str, Any]


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical type string of an ABI parameter (tuples spelled out)."""
    type_: str = param["type"]
    if type_.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){type_[len('tuple'):]}"
    return type_


def signature(entry: Mapping[str, Any]) -> str:
    """``name(type1,type2)`` of a function, event or error ABI entry."""
    return f"{entry['name']}({','.join(abi_type(p) for p in entry.get('inputs', []))})"


@dataclass(frozen=True)
class AbiFunction:
    name: str
    signature: str
    selector: bytes
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]

    def encode(self, *args: Any) -> bytes:
        """Calldata: selector + ABI-encoded arguments."""
        return self.selector + abi_encode(list(self.input_types), list(args))

    def decode_output(self, data: bytes) -> tuple[Any, ...]:
        return tuple(abi_decode(list(self.output_types), data))


@dataclass(frozen=True)
class AbiError:
    name: str
    signature: str
    selector: bytes
    input_types: tuple[str, ...]


STANDARD_ERRORS = (
    AbiError("Error", "Error(string)", keccak(text="Error(string)")[:4], ("string",)),
    AbiError("Panic", "Panic(uint256)", keccak(text="Panic(uint256)")[:4], ("uint256",)),
)


@dataclass(frozen=True)
class ContractArtifact:
    """One compiled contract."""

    name: str
    abi: list[AbiEntry]
    bytecode: bytes
    deployed_bytecode: bytes
    storage_layout: Mapping[str, Any] = field(default_factory=dict, repr=False)
    metadata: str = field(default="", repr=False)

    @cached_property
    def functions(self) -> dict[str, AbiFunction]:
        """By name, and by full signature for every function (overloads only by signature)."""
        result: dict[str, AbiFunction] = {}
        names: dict[str, int] = {}
        for entry in self.abi:
            if entry.get("type") != "function":
                continue
            sig = signature(entry)
            fn = AbiFunction(
                entry["name"], sig, keccak(text=sig)[:4],
                tuple(abi_type(p) for p in entry.get("inputs", [])),
                tuple(abi_type(p) for p in entry.get("outputs", [])),
            )
            result[sig] = fn
            names[fn.name] = names.get(fn.name, 0) + 1
            result.setdefault(fn.name, fn)
        for name, count in names.items():
            if count > 1:
                del result[name]
        return result

    @cached_property
    def errors(self) -> dict[bytes, AbiError]:
        result: dict[bytes, AbiError] = {}
        for entry in self.abi:
            if entry.get("type") == "error":
                sig = signature(entry)
                result[keccak(text=sig)[:4]] = AbiError(
                    entry["name"], sig, keccak(text=sig)[:4],
                    tuple(abi_type(p) for p in entry.get("inputs", [])),
                )
        return result

    @cached_property
    def event_topics(self) -> dict[str, str]:
        """Event name -> topic0 as ``0x``-hex."""
        return {
            entry["name"]: "0x" + keccak(text=signature(entry)).hex()
            for entry in self.abi
            if entry.get("type") == "event"
        }

    def function(self, name: str) -> AbiFunction:
        try:
            return self.functions[name]
        except KeyError:
            raise ChainError(f"{self.name} has no function {name!r}") from None

    def encode_call(self, name: str, *args: Any) -> bytes:
        """Calldata for ``name(*args)``."""
        return self.function(name).encode(*args)

    def decode_output(self, name: str, data: bytes) -> tuple[Any, ...]:
        return self.function(name).decode_output(data)

    def deploy_data(self, *args: Any) -> bytes:
        """Creation bytecode followed by the ABI-encoded constructor arguments."""
        if not self.bytecode:
            raise ChainError(f"{self.name} is abstract or an interface; it cannot be deployed")
        ctor = next((e for e in self.abi if e.get("type") == "constructor"), None)
        types = [abi_type(p) for p in ctor.get("inputs", [])] if ctor else []
        if len(types) != len(args):
            raise ChainError(f"{self.name} constructor takes {len(types)} arguments, got {len(args)}")
        return self.bytecode + (abi_encode(types, list(args)) if types else b"")


class ErrorDecoder:
    """Turns revert data into ``(error name, args)`` using every known custom error."""

    def __init__(self, errors: Sequence[AbiError] = ()) -> None:
        self._by_selector: dict[bytes, AbiError] = {e.selector: e for e in STANDARD_ERRORS}
        for error in errors:
            self._by_selector.setdefault(error.selector, error)

    def decode(self, data: bytes) -> tuple[str | None, tuple[Any, ...]]:
        """``(name, args)``; ``(None, ())`` when the selector is unknown or the data malformed."""
        error = self._by_selector.get(data[:4]) if len(data) >= 4 else None
        if error is None:
            return None, ()
        try:
            return error.name, tuple(abi_decode(list(error.input_types), data[4:]))
        except (DecodingError, ValueError, OverflowError):
            return error.name, ()


@dataclass(frozen=True)
class Artifacts(Mapping[str, ContractArtifact]):
    """Every compiled contract of ``contracts/``, by contract name."""

    contracts: Mapping[str, ContractArtifact]
    source_hash: str = ""

    def __getitem__(self, name: str) -> ContractArtifact:
        try:
            return self.contracts[name]
        except KeyError:
            raise CompileError(f"no compiled contract named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.contracts)

    def __len__(self) -> int:
        return len(self.contracts)

    @cached_property
    def error_decoder(self) -> ErrorDecoder:
        """Decodes the custom errors of all our contracts (and OpenZeppelin's they use)."""
        return ErrorDecoder([e for c in self.contracts.values() for e in c.errors.values()])

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Artifacts:
        contracts = {
            name: ContractArtifact(
                name=name,
                abi=list(c["abi"]),
                bytecode=bytes.fromhex(c["bytecode"]),
                deployed_bytecode=bytes.fromhex(c["deployedBytecode"]),
                storage_layout=c.get("storageLayout", {}),
                metadata=c.get("metadata", ""),
            )
            for name, c in data["contracts"].items()
        }
        return cls(contracts, str(data.get("sourceHash", "")))


_loaded: dict[tuple[Path, str], Artifacts] = {}


def load_artifacts(root: Path | None = None, *, force: bool = False) -> Artifacts:
    """Compiled artifacts of ``<root>/contracts/*.sol``; compiles only when sources changed.

    ``root`` defaults to the repository this package lives in. Results are memoised per
    process and cached on disk in ``<root>/.build/openpay-artifacts-<hash>.json``.
    """
    from chain.compile import project_root, source_hash

    root = (root or project_root()).resolve()
    key = (root, source_hash(root))
    if not force and key in _loaded:
        return _loaded[key]
    artifacts = Artifacts.from_json(compiled(root, force=force))
    _loaded[key] = artifacts
    return artifacts
