"""`ape compile` and `ape run deploy` offline against an anvil with chain id 97 (BSC testnet's)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.artifacts import Artifacts
from chain.client import SyncRpcClient
from chain.compile import ensure_solcx_link, project_root
from chain.deploy import OPERATOR_ROLE, Deployment, deployment_path
from chain.deposits import DEPOSIT_INITCODE_HASH
from node.infra.anvil import EmbeddedAnvil
from node.infra.process import free_port

ROOT = project_root()


@pytest.fixture(scope="module")
def anvil97() -> Iterator[EmbeddedAnvil]:
    server = EmbeddedAnvil(None, free_port(), chain_id=97, accounts=5)
    server.start()
    yield server
    server.stop()


def ape(*args: str, host: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        SOLCX_BINARY_PATH=str(ensure_solcx_link(ROOT)),
        APE_DATA_FOLDER=str(ROOT / ".ape"),
        APE_FOUNDRY_HOST=host,
    )
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "ape"), *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"ape {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


def test_ape_compile_and_deploy_to_chain_97(anvil97: EmbeddedAnvil, tmp_path: Path, artifacts: Artifacts) -> None:
    compiled = ape("compile", "--force", host=anvil97.url)
    assert "compiled" in compiled.stdout + compiled.stderr

    deployed = ape("run", "deploy", "--network", "bsc:local:foundry", "--out", str(tmp_path),
                   "--operator", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", host=anvil97.url)
    assert "wrote" in deployed.stdout
    deployment = Deployment.load(deployment_path(tmp_path, 97))
    assert deployment.chain_id == 97
    assert deployment.token_is_mock
    assert deployment.operator == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

    with SyncRpcClient(anvil97.url) as rpc:
        for name, address in (
            ("OpenPayGateway", deployment.gateway),
            ("OpenPaySubscriptions", deployment.subscriptions),
            ("OpenPayRateOracle", deployment.oracle),
            ("MockUSDT", deployment.token),
        ):
            code = bytes.fromhex(rpc.request("eth_getCode", [address, "latest"])[2:])
            # runtime code = compiled runtime code, except the immutables filled in at deployment
            assert len(code) == len(artifacts[name].deployed_bytecode), name
        assert deployment.forwarder_implementation == "0x" + DEPOSIT_INITCODE_HASH.hex()
        gateway = artifacts["OpenPayGateway"]
        role = gateway.encode_call("hasRole", OPERATOR_ROLE, deployment.operator)
        assert int(rpc.request("eth_call", [{"to": deployment.gateway, "data": "0x" + role.hex()}, "latest"]), 16) == 1

    rotated = ape("run", "roles", "--network", "bsc:local:foundry", "--deployments", str(tmp_path),
                  "--contract", "gateway", "--role", "OPERATOR", "--address", deployment.operator, "--revoke",
                  host=anvil97.url)
    assert "revoked" in rotated.stdout
