"""`openpay dev`: embedded servers, migrations, contracts, demo data and every role."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from node.cli import Role, role_process, wait_http
from node.config import Settings
from node.db.migrate import upgrade
from node.infra.process import InfraError, ManagedProcess, ensure_port_free
from node.infra.stack import EmbeddedStack

# on the dev chain's 1 s blocks a payment is final within about three seconds
DEV_CONFIRMATIONS = 2


def ensure_contracts(settings: Settings, progress: Callable[[str], object]) -> Path:
    """Deploys the contracts to the dev chain unless its deployments file still matches the chain
    (the file lives with the chain's state under the data dir, so they come and go together)."""
    from eth_account import Account

    from chain.client import SyncRpcClient, make_web3
    from chain.deploy import Deployment, LocalSigner, deploy
    from chain.errors import DeploymentError

    path = settings.data_dir / "deployments" / f"{settings.chain_id}.json"
    rpc_url = settings.rpc_urls[0]
    if path.exists():
        try:
            deployment = Deployment.load(path)
            with SyncRpcClient(rpc_url) as rpc:
                if rpc.request("eth_getCode", [deployment.gateway, "latest"]) not in ("0x", None):
                    return path
        except DeploymentError:
            pass
    operator = Account.from_key(settings.operator_key.get_secret_value()).address
    treasurer = Account.from_key(settings.treasurer_key.get_secret_value()).address
    reporter_key = settings.oracle_reporter_key or settings.operator_key
    reporter = Account.from_key(reporter_key.get_secret_value()).address
    deployment = deploy(
        make_web3(rpc_url), LocalSigner(settings.deployer_key.get_secret_value()), operator=operator,
        treasurer=treasurer, reporter=reporter,
        progress=lambda step, done, total: _say(progress, f"deploying contracts: {step} ({done}/{total})"),
    )
    deployment.save(path)
    return path


def _say(progress: Callable[[str], object], text: str) -> None:
    progress(text)


def seed(settings: Settings) -> list[str]:
    """The demo merchant and admin; returns the lines that tell how to use them."""
    from node.db import Database
    from node.merchants.demo import seed_demo

    async def run() -> list[str]:
        db = Database.from_settings(settings)
        try:
            async with db.unit_of_work() as session:
                demo = await seed_demo(session, settings)
        finally:
            await db.dispose()
        return [
            f"Demo API key  {demo.api_key}  (test mode; the SDKs take it as is)",
            f"Merchant      {demo.merchant_email} / {demo.merchant_password}",
            f"Admin         {demo.admin_email} / {demo.admin_password}  (enrol 2FA at first login)",
        ]

    return asyncio.run(run())


class DevNode:
    def __init__(self, settings: Settings, roles: list[Role]) -> None:
        self.base_settings = settings
        self.settings = settings
        self.roles = roles
        self.stack = EmbeddedStack(settings)
        self.processes: dict[Role, ManagedProcess] = {}
        self.notes: list[str] = []
        self.role_env: dict[str, str] = {}

    def start(self, console: Console) -> None:
        if Role.api in self.roles:
            ensure_port_free("api", self.settings.api_host, self.settings.api_port)
        with console.status("starting embedded servers") as status:
            self.settings = self.stack.start(progress=status.update)
            status.update("applying migrations")
            upgrade(self.settings)
            status.update("deploying contracts")
            deployment_file = self.settings.deployment_file or ensure_contracts(self.settings, status.update)
            confirmations = (self.settings.indexer_confirmations
                             if "indexer_confirmations" in self.base_settings.model_fields_set else DEV_CONFIRMATIONS)
            self.settings = self.settings.model_copy(update={"deployment_file": deployment_file,
                                                             "indexer_confirmations": confirmations})
            self.role_env = {"OPENPAY_DEPLOYMENT_FILE": str(deployment_file),
                             "OPENPAY_INDEXER_CONFIRMATIONS": str(confirmations),
                             "OPENPAY_DATA_DIR": str(self.settings.data_dir)}
            status.update("seeding the demo merchant")
            self.notes = seed(self.settings)
            for role in self.roles:
                status.update(f"starting {role.value}")
                process = role_process(role, self.settings, self.role_env)
                process.log_path = None
                process.start()
                self.processes[role] = process
            if Role.api in self.roles:
                status.update("waiting for the API")
                if not wait_http(f"http://{self.settings.api_host}:{self.settings.api_port}/readyz"):
                    raise InfraError("the API did not become ready in 30 s; see its log above")

    def summary(self) -> str:
        s = self.settings
        api = f"http://{s.api_host}:{s.api_port}"
        lines = [
            f"API        {api}",
            f"API docs   {api}/docs",
            f"Checkout   {api}/checkout/<paymentId>",
            f"Metrics    {api}/metrics",
            f"Chain RPC  {s.rpc_url}  (chain id {s.chain_id}, contracts in {s.deployment_file})",
            f"Database   {(s.database_url or '').replace('+asyncpg', '')}",
            f"Redis      {s.redis_url}",
            f"NATS       {s.nats_url}",
            f"Data       {s.data_dir}",
            "",
            "Ctrl-C stops everything; the data stays for the next run.",
        ]
        return "\n".join(lines)

    def credentials(self) -> str:
        """Printed outside the panel, unwrapped, so the key can be copied whole."""
        return "\n".join(self.notes)

    def dead_role(self) -> str | None:
        for role, process in self.processes.items():
            if not process.alive():
                return role.value
        return None

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
        self.processes.clear()
        self.stack.stop()
