"""`ape run roles --network ... --contract gateway --role OPERATOR --address 0x... [--revoke]`:
rotate a role using the addresses in deployments/<chainId>.json. Thin: see chain.deploy.set_role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from ape import project
from ape.cli import ConnectedProviderCommand

from chain.deploy import ROLE_IDS, Deployment, deployment_path, set_role
from scripts._signers import signer_for


@click.command(cls=ConnectedProviderCommand)
@click.option("--account", "alias", envvar="OPENPAY_DEPLOYER_ACCOUNT", default=None, help="ape account alias (admin)")
@click.option("--contract", "which", type=click.Choice(["gateway", "subscriptions", "oracle"]), required=True)
@click.option("--role", type=click.Choice(sorted(ROLE_IDS), case_sensitive=False), required=True)
@click.option("--address", "account", required=True)
@click.option("--revoke", is_flag=True, default=False)
@click.option("--deployments", "folder", type=click.Path(file_okay=False, path_type=Path), default=None)
def cli(provider: Any, alias: str | None, which: str, role: str, account: str, revoke: bool,
        folder: Path | None) -> None:
    w3 = provider.web3
    deployment = Deployment.load(deployment_path(folder or project.path / "deployments", w3.eth.chain_id))
    changed = set_role(w3, signer_for(provider, alias), getattr(deployment, which), role, account, grant=not revoke)
    verb = "revoked from" if revoke else "granted to"
    click.echo(f"{role} {verb} {account} on {which}" if changed else "nothing to change")
