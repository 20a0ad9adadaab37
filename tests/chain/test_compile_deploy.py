"""Compilation cache and deployments files."""

from __future__ import annotations

import time
from pathlib import Path

from eth_utils.crypto import keccak

from chain.artifacts import Artifacts, load_artifacts
from chain.compile import cache_path, project_root, source_hash
from chain.deploy import Deployment, deployment_path, set_role
from chain.deposits import DEPOSIT_INITCODE_HASH
from tests.fixtures.contracts import ADDRESSES, Chain


class TestCompile:
    def test_artifacts_are_cached_by_source_hash(self, artifacts: Artifacts) -> None:
        root = project_root()
        assert cache_path(root, source_hash(root)).exists()
        started = time.perf_counter()
        again = load_artifacts()
        assert time.perf_counter() - started < 0.5
        assert again["OpenPayGateway"].deployed_bytecode == artifacts["OpenPayGateway"].deployed_bytecode

    def test_artifacts_carry_abi_bytecode_layout_metadata(self, artifacts: Artifacts) -> None:
        gateway = artifacts["OpenPayGateway"]
        assert gateway.bytecode and gateway.deployed_bytecode
        assert any(s["label"] == "_balances" for s in gateway.storage_layout["storage"])
        assert '"optimizer":{"enabled":true,"runs":200}' in gateway.metadata
        assert '"evmVersion":"cancun"' in gateway.metadata
        assert {"MockUSDT", "OpenPayDepositForwarder", "OpenPaySubscriptions", "OpenPayRateOracle"} <= set(artifacts)


class TestDeployment:
    def test_file_round_trip(self, deployment: Deployment, tmp_path: Path) -> None:
        path = deployment_path(tmp_path, deployment.chain_id)
        deployment.save(path)
        assert path.name == "31337.json"
        assert Deployment.load(path) == deployment
        assert deployment.start_block == min(deployment.blocks.values()) > 0

    def test_code_at_every_address(self, contracts: Chain) -> None:
        d = contracts.deployment
        for address in (d.gateway, d.subscriptions, d.oracle, d.token, d.event_emitter):
            assert len(contracts.rpc_call("eth_getCode", [address, "latest"])) > 2
        assert d.forwarder_implementation == "0x" + DEPOSIT_INITCODE_HASH.hex()  # what deposit_address needs

    def test_set_role_grants_and_revokes(self, contracts: Chain) -> None:
        from chain.client import make_web3
        from chain.deploy import LocalSigner
        from tests.fixtures.contracts import KEYS

        w3 = make_web3(contracts.rpc.urls[0])
        admin = LocalSigner(KEYS[0])
        gateway = contracts.deployment.gateway
        role = keccak(text="OPERATOR_ROLE")
        assert set_role(w3, admin, gateway, "operator", ADDRESSES[9], artifacts=contracts.artifacts) is True
        assert contracts.call("OpenPayGateway", "hasRole", role, ADDRESSES[9]) is True
        assert set_role(w3, admin, gateway, "operator", ADDRESSES[9], artifacts=contracts.artifacts) is False
        set_role(w3, admin, gateway, "OPERATOR", ADDRESSES[9], grant=False, artifacts=contracts.artifacts)
        assert contracts.call("OpenPayGateway", "hasRole", role, ADDRESSES[9]) is False
