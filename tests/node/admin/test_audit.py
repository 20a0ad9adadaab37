"""The audit log's hash chain: any edited or deleted row is found and named."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from node.admin import audit
from node.admin.models import AuditLog
from node.auth.context import RequestMeta
from node.config import Settings
from node.resources import Resources


async def _append(session: AsyncSession, n: int) -> list[int]:
    merchant = uuid.uuid4()
    for i in range(n):
        await audit.record(session, action=f"test.action.{i}", actor_type="SYSTEM", merchant_id=merchant,
                           changes={"status": ["A", "B"]}, details={"n": i, "unicode": "ශ්‍රී"},
                           meta=RequestMeta(ip="198.51.100.9", user_agent="pytest"))
    rows = (await session.execute(select(AuditLog.id).where(AuditLog.merchant_id == merchant)
                                  .order_by(AuditLog.id))).scalars().all()
    return list(rows)


class TestChain:
    async def test_an_untouched_chain_verifies(self, session: AsyncSession) -> None:
        await _append(session, 3)
        result = await audit.verify(session)
        assert result.ok and result.rows >= 3

    async def test_an_edited_row_is_named(self, session: AsyncSession) -> None:
        ids = await _append(session, 3)
        await session.execute(text("UPDATE admin.audit_log SET details = '{\"n\": 99}' WHERE id = :id"),
                              {"id": ids[1]})
        result = await audit.verify(session)
        assert not result.ok and result.bad_row_id == ids[1]
        assert "hash" in (result.reason or "")

    async def test_an_edited_ip_or_time_is_named(self, session: AsyncSession) -> None:
        ids = await _append(session, 2)
        await session.execute(text("UPDATE admin.audit_log SET occurred_at = occurred_at - interval '1 day' "
                                   "WHERE id = :id"), {"id": ids[0]})
        assert (await audit.verify(session)).bad_row_id == ids[0]

    async def test_a_deleted_row_breaks_the_next_rows_link(self, session: AsyncSession) -> None:
        ids = await _append(session, 3)
        await session.execute(text("DELETE FROM admin.audit_log WHERE id = :id"), {"id": ids[1]})
        result = await audit.verify(session)
        assert not result.ok and result.bad_row_id == ids[2]
        assert "link" in (result.reason or "")

    async def test_a_rehashed_row_still_breaks_the_chain(self, session: AsyncSession) -> None:
        """Recomputing the edited row's own hash does not help: the next row links to the old one."""
        ids = await _append(session, 3)
        await session.execute(text("UPDATE admin.audit_log SET row_hash = repeat('a', 64) WHERE id = :id"),
                              {"id": ids[1]})
        result = await audit.verify(session)
        assert not result.ok and result.bad_row_id == ids[1]


async def test_cli_verify_names_the_tampered_row(resources: Resources, settings: Settings) -> None:
    import asyncio

    from node.cli import app

    env = {"DATABASE_URL": settings.database_url or "", "OPENPAY_ENVIRONMENT": "test"}
    runner = CliRunner()

    def verify() -> object:
        return runner.invoke(app, ["audit-log", "verify"], env=env)

    ok = await asyncio.to_thread(verify)
    assert ok.exit_code == 0, ok.output  # type: ignore[attr-defined]
    assert "intact" in ok.output  # type: ignore[attr-defined]
    async with resources.db.unit_of_work() as session:
        await audit.record(session, action="test.cli", actor_type="SYSTEM")
    async with resources.db.unit_of_work() as session:
        row_id = int((await session.execute(select(func.max(AuditLog.id)))).scalar_one())

    async def set_action(action: str) -> None:
        async with resources.db.unit_of_work() as session:
            await session.execute(text("UPDATE admin.audit_log SET action = :a WHERE id = :id"),
                                  {"a": action, "id": row_id})

    await set_action("test.cli.forged")
    try:
        broken = await asyncio.to_thread(verify)
    finally:
        await set_action("test.cli")
    assert broken.exit_code == 1  # type: ignore[attr-defined]
    assert f"row {row_id}" in broken.output.replace("\n", " ")  # type: ignore[attr-defined]
