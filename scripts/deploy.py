"""`ape run deploy --network <ecosystem:network:provider>`: deploy Open Pay and write
deployments/<chainId>.json. Thin: the work is chain.deploy.deploy, shared with `openpay dev`.

Local chains (anvil, any chain id, e.g. `bsc:local:foundry` with APE_FOUNDRY_HOST) deploy from
ape's first test account; live networks need `--account ALIAS`. Roles default to the deployer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from ape import project
from ape.cli import ConnectedProviderCommand

from chain.deploy import BSC_USDT, deploy, deployment_path
from scripts._signers import signer_for


@click.command(cls=ConnectedProviderCommand)
@click.option("--account", "alias", envvar="OPENPAY_DEPLOYER_ACCOUNT", default=None, help="ape account alias")
@click.option("--operator", envvar="OPENPAY_OPERATOR_ADDRESS", default=None)
@click.option("--treasurer", envvar="OPENPAY_TREASURER_ADDRESS", default=None)
@click.option("--reporter", envvar="OPENPAY_REPORTER_ADDRESS", default=None)
@click.option("--admin", envvar="OPENPAY_ADMIN_ADDRESS", default=None)
@click.option("--token", envvar="OPENPAY_TOKEN_ADDRESS", default=None,
              help="token to allowlist; default: BSC USDT on chain 56, else a new MockUSDT")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder for <chainId>.json (default: deployments/)")
def cli(provider: Any, alias: str | None, operator: str | None, treasurer: str | None, reporter: str | None,
        admin: str | None, token: str | None, out_dir: Path | None) -> None:
    signer = signer_for(provider, alias)
    w3 = provider.web3
    chain_id = w3.eth.chain_id
    if token is None and chain_id == 56:
        token = BSC_USDT

    def progress(description: str, done: int, total: int) -> None:
        click.echo(f"[{done + 1 if done < total else done}/{total}] {description}")

    deployment = deploy(
        w3, signer,
        operator=operator or signer.address,
        treasurer=treasurer or signer.address,
        reporter=reporter or signer.address,
        admin=admin,
        token=token,
        progress=progress,
    )
    path = deployment_path(out_dir or project.path / "deployments", chain_id)
    deployment.save(path)
    click.echo(f"gateway {deployment.gateway}  subscriptions {deployment.subscriptions}  oracle {deployment.oracle}")
    click.echo(f"token {deployment.token}  forwarder {deployment.forwarder_implementation}")
    click.echo(f"wrote {path}")
