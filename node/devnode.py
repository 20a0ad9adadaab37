"""`openpay dev`: embedded servers, migrations, contracts, demo data and every role."""

from __future__ import annotations

from rich.console import Console

from node.cli import Role, role_process, wait_http
from node.config import Settings
from node.db.migrate import upgrade
from node.infra.process import InfraError, ManagedProcess, ensure_port_free
from node.infra.stack import EmbeddedStack


class DevNode:
    def __init__(self, settings: Settings, roles: list[Role]) -> None:
        self.base_settings = settings
        self.settings = settings
        self.roles = roles
        self.stack = EmbeddedStack(settings)
        self.processes: dict[Role, ManagedProcess] = {}
        self.notes: list[str] = []

    def start(self, console: Console) -> None:
        if Role.api in self.roles:
            ensure_port_free("api", self.settings.api_host, self.settings.api_port)
        with console.status("starting embedded servers") as status:
            self.settings = self.stack.start(progress=status.update)
            status.update("applying migrations")
            upgrade(self.settings)
            for role in self.roles:
                status.update(f"starting {role.value}")
                process = role_process(role, self.settings)
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
            f"Chain RPC  {s.rpc_url}  (chain id {s.chain_id})",
            f"Database   {(s.database_url or '').replace('+asyncpg', '')}",
            f"Redis      {s.redis_url}",
            f"NATS       {s.nats_url}",
            f"Data       {s.data_dir}",
            *self.notes,
            "",
            "Ctrl-C stops everything; the data stays for the next run.",
        ]
        return "\n".join(lines)

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
