"""`openpay audit` as a process: exit 0 when everything agrees, 1 naming the difference."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy import update

from chain.intents import uuid_to_bytes32
from node.settlement.models import TreasuryBalance
from tests.fixtures.settlement import Money, usdt

OPENPAY = str(Path(sys.executable).with_name("openpay"))


async def audit(money: Money) -> tuple[int, str]:
    env = money.ic.indexer_env()
    process = await asyncio.create_subprocess_exec(OPENPAY, "audit", env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


class TestAuditCommand:
    async def test_exit_status_names_the_difference(self, money: Money) -> None:
        account = await money.merchant(usdt(100))
        code, out = await audit(money)
        assert code == 0 and "OK" in out, out
        async with money.db.unit_of_work() as session:
            await session.execute(update(TreasuryBalance).where(TreasuryBalance.chain_id == money.ctx.chain_id)
                                  .values(available=TreasuryBalance.available + 5))
        try:
            code, out = await audit(money)
        finally:
            async with money.db.unit_of_work() as session:
                await session.execute(update(TreasuryBalance).where(TreasuryBalance.chain_id == money.ctx.chain_id)
                                      .values(available=TreasuryBalance.available - 5))
        assert code == 1 and "DIFFERENCE" in out and "treasury" in out and "projection says" in out, out
        assert uuid_to_bytes32(account.merchant_id)
