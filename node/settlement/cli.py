"""`openpay audit`: recompute every balance from the indexed events and compare."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from chain.artifacts import load_artifacts
from chain.client import RpcClient
from node.config import Settings
from node.db import Database
from node.settlement.audit import AuditResult, run_audit
from node.settlement.chainctx import gateway_context


async def _audit(settings: Settings, progress: Progress) -> AuditResult:
    db = Database.from_settings(settings)
    rpc = RpcClient(settings.rpc_urls)
    tasks: dict[str, TaskID] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=max(total, 1))
        progress.update(tasks[stage], completed=done, total=max(total, 1))

    try:
        return await run_audit(db, rpc, gateway_context(settings), load_artifacts()["OpenPayGateway"], report)
    finally:
        await rpc.aclose()
        await db.dispose()


def audit_command() -> None:
    """Recompute every merchant and treasury balance from the final indexed events; compare with the
    projection and with the contract (at the last final block). Exit 1 on any difference."""
    console = Console(stderr=True)
    settings = Settings()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console) as progress:
        result = asyncio.run(_audit(settings, progress))
    for difference in result.differences:
        console.print(f"[red]DIFFERENCE[/red] {difference}")
    if result.differences:
        raise typer.Exit(1)
    console.print(f"[green]OK[/green] {result.events} events, {result.merchants} merchant balances and the "
                  f"treasury agree with the contract at block {result.block}")
