"""`openpay merchants|keys|admins|audit-log ...`: operations on accounts from the shell."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from node.config import Settings
from node.errors import NodeError

T = TypeVar("T")
console = Console()
err = Console(stderr=True)

merchants_app = typer.Typer(no_args_is_help=True, help="Merchants: create, list, approve, suspend.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys: create, revoke.")
admins_app = typer.Typer(no_args_is_help=True, help="Platform admins.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")


def _run(work: Callable[[AsyncSession, Settings], Awaitable[T]]) -> T:
    from node.db import Database

    settings = Settings()
    if not settings.database_url:
        err.print("[red]error:[/red] DATABASE_URL is not set")
        raise typer.Exit(1)

    async def main() -> T:
        import redis.asyncio as aioredis

        from node.merchants.auth_cache import TTL_S, publish_changes

        db = Database.from_settings(settings)
        # API processes cache keys; a change made here must reach them (revoke, freeze, KYC)
        redis = aioredis.from_url(settings.redis_url) if settings.redis_url else None
        if redis is not None:
            db.add_commit_hook(publish_changes(redis))
        else:
            err.print("[yellow]warning:[/yellow] REDIS_URL is not set: running API processes notice a revoked "
                      f"key or a suspended merchant only within {TTL_S:g} s")
        try:
            async with db.unit_of_work() as session:
                return await work(session, settings)
        finally:
            await db.dispose()
            if redis is not None:
                await redis.aclose()

    try:
        return asyncio.run(main())
    except NodeError as exc:
        err.print(f"[red]error:[/red] {exc.message} ({exc.code})")
        raise typer.Exit(1) from None


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        err.print(f"[red]error:[/red] not a UUID: {value}")
        raise typer.Exit(2) from None


@merchants_app.command("create")
def merchants_create(
    business_name: str = typer.Option(..., "--business-name"), email: str = typer.Option(...),
    name: str = typer.Option("Owner"), password: str = typer.Option(..., prompt=True, hide_input=True),
    approved: bool = typer.Option(False, help="Create with KYC already APPROVED"),
) -> None:
    """Create a merchant and its ADMIN user."""
    from node.merchants import service

    async def work(session: AsyncSession, settings: Settings) -> Any:
        merchant, _ = await service.create_merchant(
            session, settings, business_name=business_name, email=email, password=password, name=name,
            kyc_status="APPROVED" if approved else "PENDING", actor_type="SYSTEM")
        return merchant.id

    typer.echo(f"merchant created: {_run(work)}")


@merchants_app.command("list")
def merchants_list(status: str | None = None, kyc: str | None = None, limit: int = 50) -> None:
    """List merchants, newest first."""
    from node.merchants import repository

    async def work(session: AsyncSession, settings: Settings) -> Any:
        rows, total = await repository.list_merchants(session, status=status, kyc_status=kyc, limit=limit)
        return rows, total

    rows, total = _run(work)
    table = Table("id", "business", "email", "status", "kyc", "created")
    for m in rows:
        table.add_row(str(m.id), m.business_name, m.email, m.status, m.kyc_status, m.created_at.isoformat())
    console.print(table)
    console.print(f"{len(rows)} of {total}")


@merchants_app.command("approve")
def merchants_approve(merchant_id: str, force_reason: str | None = typer.Option(None, "--force-reason")) -> None:
    """Approve a merchant's KYC (forced with a reason when directors are not all verified)."""
    from node.merchants import service

    async def work(session: AsyncSession, settings: Settings) -> Any:
        return await service.approve_kyc(session, settings, _uuid(merchant_id), admin_id=None,
                                         force=force_reason is not None, force_reason=force_reason)

    merchant = _run(work)
    console.print(f"{merchant.id}: KYC {merchant.kyc_status}")


@merchants_app.command("suspend")
def merchants_suspend(merchant_id: str, reason: str = typer.Option(..., help="Why")) -> None:
    """Freeze a merchant: logins and API keys stop at once."""
    from node.merchants import service

    async def work(session: AsyncSession, settings: Settings) -> Any:
        return await service.change_status(session, _uuid(merchant_id), "FROZEN", reason=reason, actor_id=None,
                                           actor_type="SYSTEM")

    console.print(f"{_run(work).id}: FROZEN")


@keys_app.command("create")
def keys_create(merchant_id: str, mode: str = typer.Option("test", help="live or test"),
                name: str = typer.Option("cli")) -> None:
    """Create an API key; prints `<keyId>.<secret>` once."""
    from node.merchants import api_keys, service

    if mode not in ("live", "test"):
        err.print("[red]error:[/red] --mode must be live or test")
        raise typer.Exit(2)

    async def work(session: AsyncSession, settings: Settings) -> Any:
        await service.get(session, _uuid(merchant_id))
        return await api_keys.create_key(session, settings, _uuid(merchant_id), mode=mode,  # type: ignore[arg-type]
                                         name=name, actor_type="SYSTEM")

    created = _run(work)
    typer.echo(f"key id: {created.key.key_id}")
    typer.echo(f"credential (shown once): {created.sdk_credential}")


@keys_app.command("revoke")
def keys_revoke(key_id: str, reason: str = typer.Option("revoked from the CLI")) -> None:
    """Revoke a key by its `ak_...` id."""
    from node.merchants import api_keys, repository

    async def work(session: AsyncSession, settings: Settings) -> Any:
        key = await repository.get_key_by_key_id(session, key_id)
        if key is None:
            raise NodeError("no such API key", code="NOT_FOUND", status=404)
        return await api_keys.revoke_key(session, key.merchant_id, key.id, reason=reason, actor_id=None,
                                         actor_type="SYSTEM")

    console.print(f"{_run(work).key_id}: revoked")


@admins_app.command("create")
def admins_create(email: str = typer.Option(...), name: str = typer.Option("Admin"),
                  role: str = typer.Option("SUPER_ADMIN"),
                  password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True)) -> None:
    """Create a platform admin (enrols TOTP at first login)."""
    from node.admin import accounts

    async def work(session: AsyncSession, settings: Settings) -> Any:
        return await accounts.create_admin(session, email=email, name=name, role=role, password=password,
                                           must_change_password=False)

    console.print(f"admin created: {_run(work).id}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Walk the hash chain; names the first row that was edited or whose predecessor was deleted."""
    from node.admin import audit

    result = _run(lambda session, settings: audit.verify(session))
    if result.ok:
        console.print(f"audit log intact: {result.rows} rows")
        return
    err.print(f"[red]audit log broken at row {result.bad_row_id}[/red]: {result.reason} "
              f"({result.rows} rows verified before it)")
    raise typer.Exit(1)
