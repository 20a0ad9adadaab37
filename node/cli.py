"""`openpay`: run the node, its roles and its operations."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from enum import StrEnum

import typer
from rich.console import Console
from rich.panel import Panel

from chain.errors import ChainError
from node.config import Settings
from node.infra.process import InfraError, ManagedProcess

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Open Pay node.")
console = Console(stderr=True)


class Role(StrEnum):
    api = "api"
    indexer = "indexer"
    worker = "worker"
    scheduler = "scheduler"
    relay = "relay"


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


@app.command()
def migrate() -> None:
    """Apply database migrations (idempotent)."""
    from node.db.migrate import upgrade

    settings = Settings()
    if not settings.database_url:
        raise _fail("DATABASE_URL is not set; set it, or use `openpay dev` for an embedded database")
    upgrade(settings)
    console.print("migrations applied")


@app.command()
def run(role: Role) -> None:
    """Run one role against the configured URLs (production)."""
    from node import roles

    settings = Settings()
    needed = {"DATABASE_URL": settings.database_url, "RPC_URL": settings.rpc_url} if role is Role.indexer else {
        "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url, "NATS_URL": settings.nats_url}
    missing = [name for name, value in needed.items() if not value]
    if missing:
        raise _fail(f"{', '.join(missing)} not set; configure them or use `openpay dev`")
    if role is Role.indexer:
        # the CLI is the composition root: the only place in node/ that reaches into indexer/
        from indexer.follower import FinalityViolated
        from indexer.service import run_indexer

        try:
            run_indexer(settings)
        except (ChainError, FinalityViolated) as exc:
            raise _fail(str(exc)) from None
        return
    runner = {Role.api: roles.run_api, Role.worker: roles.run_worker,
              Role.scheduler: roles.run_scheduler, Role.relay: roles.run_relay}[role]
    runner(settings)


@app.command()
def dev(
    roles: str = typer.Option("api,indexer,worker,scheduler", help="Roles to run, comma separated"),
) -> None:
    """Run the whole node on embedded PostgreSQL, Redis, NATS and anvil."""
    from node.devnode import DevNode

    node = DevNode(Settings(), roles=[Role(r) for r in roles.split(",") if r])
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        node.start(console)
        console.print(Panel(node.summary(), title="Open Pay node is running", expand=False))
        console.print(node.credentials(), soft_wrap=True, highlight=False)
        while not stop.is_set():
            dead = node.dead_role()
            if dead:
                console.print(f"[red]{dead} exited; stopping the node (see its log above)[/red]")
                break
            stop.wait(0.5)
    except InfraError as exc:
        raise _fail(str(exc)) from None
    finally:
        console.print("stopping…")
        node.stop()
        console.print("stopped")


def role_process(role: Role, settings: Settings, extra_env: dict[str, str] | None = None) -> ManagedProcess:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": settings.database_url or "", "REDIS_URL": settings.redis_url or "",
        "NATS_URL": settings.nats_url or "", "RPC_URL": settings.rpc_url or "",
        "OPENPAY_CHAIN_ID": str(settings.chain_id), "OPENPAY_API_PORT": str(settings.api_port),
        "OPENPAY_LOG_JSON": "false" if sys.stderr.isatty() else "true",
        **(extra_env or {}),
    })
    return ManagedProcess(f"openpay {role}", [sys.executable, "-m", "node.cli", "run", role.value],
                          settings.data_dir / "logs" / f"{role.value}.log", env=env)


def wait_http(url: str, timeout: float = 30.0) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def _add_accounts_commands() -> None:
    from node.merchants.cli import admins_app, audit_app, keys_app, merchants_app

    app.add_typer(merchants_app, name="merchants")
    app.add_typer(keys_app, name="keys")
    app.add_typer(admins_app, name="admins")
    app.add_typer(audit_app, name="audit-log")


_add_accounts_commands()


indexer_app = typer.Typer(no_args_is_help=True, help="The chain indexer.")
app.add_typer(indexer_app, name="indexer")


@indexer_app.command("status")
def indexer_status() -> None:
    """Cursor, head, lag and the last reorg."""
    import asyncio

    from rich.table import Table

    from indexer.operations import status

    try:
        state = asyncio.run(status(Settings()))
    except ChainError as exc:
        raise _fail(str(exc)) from None
    table = Table(show_header=False, box=None)
    for label, value in (
        ("chain", state.chain_id), ("head", state.head if state.head is not None else "RPC unreachable"),
        ("cursor", state.cursor), ("finalized", state.finalized), ("lag (blocks)", state.lag_blocks),
        ("logs stored", state.logs), ("last reorg", state.last_reorg or "none"),
        ("indexer running", "yes" if state.leader_running else "no"),
    ):
        table.add_row(label, str(value))
    Console().print(table)


@indexer_app.command("resync")
def indexer_resync(from_block: int = typer.Option(..., "--from", help="First block to read again")) -> None:
    """Read blocks again from FROM: what is missing is added, nothing is counted twice."""
    import asyncio

    from indexer.operations import IndexerRunning, resync

    try:
        cursor = asyncio.run(resync(Settings(), from_block))
    except (ChainError, IndexerRunning) as exc:
        raise _fail(str(exc)) from None
    console.print(f"cursor moved to block {cursor}; the indexer reads from {cursor + 1} when it runs")


from node.webhooks.cli import replay_webhooks  # noqa: E402

app.command("replay-webhooks")(replay_webhooks)


if __name__ == "__main__":
    app()


def _add_settlement_commands() -> None:
    from node.settlement.cli import audit_command

    app.command("audit")(audit_command)


_add_settlement_commands()
