"""The chain as payments see it: the deployment (cached), the intent domain, a fast signer
and the operator's transaction sender."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

from coincurve import PrivateKey

from chain.artifacts import Artifacts, load_artifacts
from chain.client import RpcClient
from chain.deploy import Deployment, deployment_path
from chain.deposits import predict_deposit_address_lower
from chain.errors import DeploymentError
from chain.hashing import keccak
from chain.intents import IntentDomain, PaymentIntent
from chain.txsender import TxSender
from node.config import Settings
from node.errors import ServiceUnavailable


class ChainNotConfigured(ServiceUnavailable):
    code = "CHAIN_NOT_CONFIGURED"


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> Deployment:
    return Deployment.load(Path(path))


_checked: dict[str, tuple[float, float]] = {}  # path -> (when its mtime was read, the mtime)


class NoTestChain(ServiceUnavailable):
    code = "TEST_CHAIN_NOT_CONFIGURED"


def deployment(settings: Settings) -> Deployment:
    """The contracts of the configured chain (cached per file version; the file is looked at
    at most once a second, not on every payment)."""
    return _deployment_at(str(settings.deployment_file or deployment_path(settings.deployments_dir, settings.chain_id)))


def deployment_for_mode(settings: Settings, mode: str) -> Deployment:
    """The contracts a new payment in ``mode`` is made on: the test chain's for test mode when the
    node has a separate one (read from its settings' fields, not a built copy: payment creation's
    hot path). Test mode on a live chain without a test chain is refused."""
    if mode == "test":
        if settings.test_chain_id is not None and settings.test_rpc_url:
            return _deployment_at(str(settings.test_deployment_file
                                      or deployment_path(settings.deployments_dir, settings.test_chain_id)))
        if settings.chain_id in settings.live_chain_ids:
            raise NoTestChain(
                f"test-mode payments are not made on live chain {settings.chain_id}: set OPENPAY_TEST_RPC_URL and "
                "OPENPAY_TEST_CHAIN_ID to a test chain (BSC testnet 97) with the contracts deployed, or use a live key")
    return deployment(settings)


def chain_of(settings: Settings, chain_id: int) -> Settings:
    """The settings of the chain a stored payment lives on (sweeps, refunds, simulate, checkout)."""
    if chain_id == settings.chain_id:
        return settings
    test = settings.test_chain()
    if test is not None and test.chain_id == chain_id:
        return test
    raise ChainNotConfigured(f"chain {chain_id} is not configured on this node (RPC_URL / OPENPAY_TEST_RPC_URL)")


def _deployment_at(path: str) -> Deployment:
    now = time.monotonic()
    checked = _checked.get(path)
    if checked is None or now - checked[0] > 1.0:
        try:
            checked = _checked[path] = (now, Path(path).stat().st_mtime)
        except OSError as exc:
            raise ChainNotConfigured(f"no contracts deployment at {path}; payments need one") from exc
    try:
        return _load(path, checked[1])
    except (DeploymentError, ValueError, KeyError) as exc:
        raise ChainNotConfigured(f"unreadable deployment file {path}") from exc


def domain(dep: Deployment) -> IntentDomain:
    return IntentDomain(dep.chain_id, dep.gateway)


@functools.lru_cache(maxsize=4)
def _key(secret: str) -> PrivateKey:
    return PrivateKey(bytes.fromhex(secret.removeprefix("0x")))


def sign(intent: PaymentIntent, dom: IntentDomain, secret: str) -> bytes:
    """The operator's 65-byte signature; libsecp256k1 (coincurve) is ~20x faster than eth-account,
    and the intent is signed on every payment creation. Low-s, v = 27/28 like OpenZeppelin wants."""
    raw = _key(secret).sign_recoverable(intent.digest(dom), hasher=None)
    return raw[:64] + bytes([raw[64] + 27])


@functools.lru_cache(maxsize=8)
def _separator(dom: IntentDomain) -> bytes:
    return dom.separator


def sign_and_deposit(intent: PaymentIntent, dom: IntentDomain, implementation: str, secret: str
                     ) -> tuple[bytes, str]:
    """``(signature, lowercase deposit address)`` from one digest (the domain separator cached):
    the same results as ``sign`` and ``chain.deposits.deposit_address``."""
    digest = keccak(b"\x19\x01" + _separator(dom) + intent.struct_hash())
    raw = _key(secret).sign_recoverable(digest, hasher=None)
    address = predict_deposit_address_lower(dom.verifying_contract, implementation, digest)
    return raw[:64] + bytes([raw[64] + 27]), address


@functools.lru_cache(maxsize=1)
def artifacts() -> Artifacts:
    return load_artifacts()


@dataclass
class Operator:
    """The operator's sender for sweeps and refunds (one per process: the nonce lives here)."""

    rpc: RpcClient
    sender: TxSender

    async def aclose(self) -> None:
        await self.rpc.aclose()


def operator(settings: Settings, key: str | None = None) -> Operator:
    dep = deployment(settings)
    rpc = RpcClient(settings.rpc_urls)
    sender = TxSender(rpc, key or settings.operator_key.get_secret_value(), chain_id=dep.chain_id,
                      errors=artifacts().error_decoder, replace_after=30, bump=1.125, poll_interval=0.05)
    return Operator(rpc, sender)
