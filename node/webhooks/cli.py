"""`openpay replay-webhooks`: send a merchant's undelivered (or all) webhooks of a time range again."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import typer
from rich.console import Console

from node.config import Settings

console = Console(stderr=True)


def replay_webhooks(
    merchant: str = typer.Option(..., help="Merchant id"),
    since: datetime = typer.Option(..., "--from", help="Start of the range (ISO time, deliveries' creation)"),
    until: datetime = typer.Option(..., "--to", help="End of the range"),
    endpoint: str | None = typer.Option(None, help="Only this endpoint id"),
    include_delivered: bool = typer.Option(False, help="Also send again what was delivered"),
) -> None:
    """Deliveries keep their ids, so receivers that deduplicate on webhook-id see repeats only."""
    from node.db import Database
    from node.webhooks import service
    from node.webhooks.schemas import ReplayIn

    settings = Settings()
    if not settings.database_url:
        console.print("[red]error:[/red] DATABASE_URL is not set")
        raise typer.Exit(1)
    request = ReplayIn.model_validate({"from": since, "to": until, "endpointId": endpoint,
                                       "includeDelivered": include_delivered})

    async def run() -> int:
        db = Database.from_settings(settings)
        try:
            async with db.unit_of_work() as session:
                return await service.replay(session, uuid.UUID(merchant), request)
        finally:
            await db.dispose()

    console.print(f"{asyncio.run(run())} deliveries scheduled again")
