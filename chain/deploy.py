"""Deploy the Open Pay contracts, grant roles, allowlist the token; read/write deployments files.

One code path for ``openpay dev``, the tests and ``ape run deploy``: callers hand in a Web3 and a
:class:`TransactionSigner` (a private key via :class:`LocalSigner`, or an ape account adapter).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.types import TxParams, TxReceipt

from chain.artifacts import Artifacts, load_artifacts
from chain.errors import DeploymentError

BSC_USDT = "0x55d398326f99059fF775485246999027B3197955"
LEGACY_FEE_CHAINS = frozenset({56, 97})
GAS_MARGIN = 1.25

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
TREASURER_ROLE = keccak(text="TREASURER_ROLE")
PAUSER_ROLE = keccak(text="PAUSER_ROLE")
COLLECTOR_ROLE = keccak(text="COLLECTOR_ROLE")
REPORTER_ROLE = keccak(text="REPORTER_ROLE")
ADMIN_ROLE = bytes(32)

Progress = Callable[[str, int, int], None]
"""``progress(description, steps_done, steps_total)``; called before each transaction and at the end."""


class TransactionSigner(Protocol):
    """Whoever signs and sends deployment transactions."""

    @property
    def address(self) -> str: ...

    def send_transaction(self, w3: Web3, tx: TxParams) -> HexBytes:
        """Signs and broadcasts ``tx`` (``to``/``data``/``value``; the signer fills the rest); returns its hash."""
        ...


class LocalSigner:
    """Signs with a private key held in memory; nonce, gas and fees filled from the node."""

    def __init__(self, private_key: str | bytes, *, gas_margin: float = GAS_MARGIN) -> None:
        self.account: LocalAccount = Account.from_key(private_key)
        self.gas_margin = gas_margin

    @property
    def address(self) -> str:
        return str(self.account.address)

    def send_transaction(self, w3: Web3, tx: TxParams) -> HexBytes:
        full: dict[str, Any] = dict(tx)
        full["from"] = self.account.address
        full.setdefault("value", 0)
        full["chainId"] = w3.eth.chain_id
        full["nonce"] = w3.eth.get_transaction_count(self.account.address, "pending")
        full["gas"] = int(w3.eth.estimate_gas(full) * self.gas_margin)  # type: ignore[arg-type]
        latest = w3.eth.get_block("latest")
        if full["chainId"] in LEGACY_FEE_CHAINS or latest.get("baseFeePerGas") is None:
            full["gasPrice"] = w3.eth.gas_price
        else:
            tip = w3.eth.max_priority_fee
            full["maxPriorityFeePerGas"] = tip
            full["maxFeePerGas"] = 2 * int(latest["baseFeePerGas"]) + tip
        signed = self.account.sign_transaction(full)
        return w3.eth.send_raw_transaction(signed.raw_transaction)


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live on one chain; what ``deployments/<chainId>.json`` holds."""

    chain_id: int
    gateway: str
    subscriptions: str
    oracle: str
    token: str
    forwarder_implementation: str
    """What :func:`chain.deposits.deposit_address` needs besides the intent: the gateway's deposit
    initcode hash (``0x`` + 64 hex digits; older gateways: their EIP-1167 implementation address)."""
    deployer: str
    admin: str
    operator: str
    treasurer: str
    reporter: str
    token_is_mock: bool
    blocks: dict[str, int] = field(default_factory=dict)
    event_emitter: str | None = None
    source_hash: str = ""

    @property
    def start_block(self) -> int:
        """The first block the indexer needs to read."""
        return min(self.blocks.values()) if self.blocks else 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        names = {f.name for f in fields(cls)}
        missing = {f.name for f in fields(cls) if f.name not in data} - {"blocks", "event_emitter", "source_hash"}
        if missing:
            raise DeploymentError(f"deployments file lacks {sorted(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self, path: Path) -> None:
        """Writes the file atomically (a reader never sees half of it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".tmp-", delete=False) as handle:
            json.dump(self.to_json(), handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(handle.name, path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise DeploymentError(f"cannot read deployments file {path}: {exc}") from exc


def deployment_path(directory: Path, chain_id: int) -> Path:
    """``<directory>/<chainId>.json``."""
    return directory / f"{chain_id}.json"


class _Deployer:
    def __init__(self, w3: Web3, signer: TransactionSigner, total: int, progress: Progress | None,
                 timeout: float) -> None:
        self.w3 = w3
        self.signer = signer
        self.total = total
        self.done = 0
        self.progress = progress
        self.timeout = timeout

    def _step(self, description: str) -> None:
        if self.progress is not None:
            self.progress(description, self.done, self.total)
        self.done += 1

    def send(self, description: str, tx: TxParams) -> TxReceipt:
        self._step(description)
        try:
            tx_hash = self.signer.send_transaction(self.w3, tx)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.timeout, poll_latency=0.2)
        except DeploymentError:
            raise
        except Exception as exc:
            raise DeploymentError(f"{description} failed: {exc}") from exc
        if receipt["status"] != 1:
            raise DeploymentError(f"{description} reverted (tx {tx_hash.hex()})")
        return receipt

    def create(self, description: str, data: bytes) -> tuple[str, int]:
        receipt = self.send(description, {"data": data})
        address = receipt.get("contractAddress")
        if not address:
            raise DeploymentError(f"{description}: receipt has no contract address")
        return to_checksum_address(address), int(receipt["blockNumber"])

    def call(self, description: str, to: str, data: bytes) -> None:
        self.send(description, {"to": to, "data": data})


def deploy(
    w3: Web3,
    signer: TransactionSigner,
    *,
    operator: str,
    treasurer: str,
    reporter: str,
    token: str | None = None,
    admin: str | None = None,
    oracle_description: str = "USDT / LKR",
    oracle_max_age: int = 6 * 3600,
    event_emitter: bool = False,
    artifacts: Artifacts | None = None,
    progress: Progress | None = None,
    timeout: float = 120.0,
) -> Deployment:
    """Deploys gateway, subscriptions, oracle and, when
    ``token`` is None, MockUSDT; grants OPERATOR/PAUSER to ``operator``, TREASURER to
    ``treasurer``, REPORTER to ``reporter``, COLLECTOR to the subscriptions contract; allowlists
    the token. ``admin`` (default: the signer) ends up holding every contract's admin role; when
    it differs from the signer, the signer renounces its own.
    """
    artifacts = artifacts or load_artifacts()
    deployer_address = to_checksum_address(signer.address)
    admin = to_checksum_address(admin or deployer_address)
    operator, treasurer, reporter = (to_checksum_address(a) for a in (operator, treasurer, reporter))
    chain_id = w3.eth.chain_id
    total = 10 + (token is None) + bool(event_emitter) + (3 * 2 if admin != deployer_address else 0)
    run = _Deployer(w3, signer, total, progress, timeout)
    gateway_art = artifacts["OpenPayGateway"]
    subs_art = artifacts["OpenPaySubscriptions"]
    oracle_art = artifacts["OpenPayRateOracle"]
    blocks: dict[str, int] = {}

    if token is None:
        token, blocks["token"] = run.create("Deploy MockUSDT", artifacts["MockUSDT"].deploy_data())
        token_is_mock = True
    else:
        token = to_checksum_address(token)
        token_is_mock = False
        if not w3.eth.get_code(token):
            raise DeploymentError(f"token {token} has no code on chain {chain_id}")
    gateway, blocks["gateway"] = run.create("Deploy OpenPayGateway", gateway_art.deploy_data(deployer_address))
    subscriptions, blocks["subscriptions"] = run.create(
        "Deploy OpenPaySubscriptions", subs_art.deploy_data(deployer_address, gateway)
    )
    oracle, blocks["oracle"] = run.create(
        "Deploy OpenPayRateOracle", oracle_art.deploy_data(deployer_address, oracle_description, oracle_max_age)
    )
    emitter = None
    if event_emitter:
        emitter, blocks["event_emitter"] = run.create(
            "Deploy OpenPayEventEmitter", artifacts["OpenPayEventEmitter"].deploy_data()
        )

    grant = gateway_art.function("grantRole")
    run.call("Grant gateway OPERATOR", gateway, grant.encode(OPERATOR_ROLE, operator))
    run.call("Grant gateway PAUSER", gateway, grant.encode(PAUSER_ROLE, operator))
    run.call("Grant gateway TREASURER", gateway, grant.encode(TREASURER_ROLE, treasurer))
    run.call("Grant gateway COLLECTOR to subscriptions", gateway, grant.encode(COLLECTOR_ROLE, subscriptions))
    run.call("Grant subscriptions OPERATOR", subscriptions, grant.encode(OPERATOR_ROLE, operator))
    run.call("Grant oracle REPORTER", oracle, grant.encode(REPORTER_ROLE, reporter))
    run.call("Allowlist token", gateway, gateway_art.encode_call("setTokenAllowed", token, True))
    if admin != deployer_address:
        renounce = gateway_art.function("renounceRole")
        for name, address in (("gateway", gateway), ("subscriptions", subscriptions), ("oracle", oracle)):
            run.call(f"Grant {name} ADMIN", address, grant.encode(ADMIN_ROLE, admin))
            run.call(f"Renounce deployer's {name} ADMIN", address, renounce.encode(ADMIN_ROLE, deployer_address))

    # Deposit addresses are CREATE2(gateway, intent digest, this hash): see chain.deposits.
    initcode_hash = gateway_art.decode_output(
        "DEPOSIT_INITCODE_HASH",
        w3.eth.call({"to": gateway, "data": gateway_art.encode_call("DEPOSIT_INITCODE_HASH")}),
    )[0]
    deployment = Deployment(
        chain_id=chain_id,
        gateway=gateway,
        subscriptions=subscriptions,
        oracle=oracle,
        token=token,
        forwarder_implementation="0x" + bytes(initcode_hash).hex(),
        deployer=deployer_address,
        admin=admin,
        operator=operator,
        treasurer=treasurer,
        reporter=reporter,
        token_is_mock=token_is_mock,
        blocks=blocks,
        event_emitter=emitter,
        source_hash=artifacts.source_hash,
    )
    if progress is not None:
        progress("Deployed", run.done, run.done)
    return deployment


ROLE_IDS: dict[str, bytes] = {
    "ADMIN": ADMIN_ROLE,
    "OPERATOR": OPERATOR_ROLE,
    "TREASURER": TREASURER_ROLE,
    "PAUSER": PAUSER_ROLE,
    "COLLECTOR": COLLECTOR_ROLE,
    "REPORTER": REPORTER_ROLE,
}
"""Role name -> role id, for :func:`set_role` (the same ids in every contract)."""


def set_role(
    w3: Web3,
    signer: TransactionSigner,
    contract: str,
    role: str,
    account: str,
    *,
    grant: bool = True,
    artifacts: Artifacts | None = None,
    timeout: float = 120.0,
) -> bool:
    """Grants (or revokes) ``role`` on ``contract`` for ``account``; the signer must be the
    contract's admin. Returns False when nothing needed to change."""
    artifacts = artifacts or load_artifacts()
    access = artifacts["OpenPayGateway"]  # AccessControl's ABI is the same in every contract
    try:
        role_id = ROLE_IDS[role.upper()]
    except KeyError:
        raise DeploymentError(f"unknown role {role!r}; one of {', '.join(ROLE_IDS)}") from None
    contract, account = to_checksum_address(contract), to_checksum_address(account)
    raw = w3.eth.call({"to": contract, "data": access.encode_call("hasRole", role_id, account)})
    if bool(access.decode_output("hasRole", raw)[0]) == grant:
        return False
    run = _Deployer(w3, signer, 1, None, timeout)
    fn = "grantRole" if grant else "revokeRole"
    run.call(f"{fn} {role} {account}", contract, access.encode_call(fn, role_id, account))
    return True
