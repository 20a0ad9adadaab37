"""`openpay audit`: every balance recomputed from the indexed events, compared with the projection
and with the contract's own views, at the last final block."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, text

from chain.artifacts import ContractArtifact
from chain.client import RpcClient
from chain.events import decode_log
from node.db import Database
from node.indexing.models import ChainCursor, ChainLog
from node.settlement import repository as repo
from node.settlement.chainctx import GatewayContext
from node.settlement.handlers import balance_deltas

Progress = Callable[[str, int, int], None]
BATCH = 5000


@dataclass(frozen=True)
class Difference:
    account: str  # "merchant 0x..." or "treasury"
    token: str
    source: str  # "projection" or "contract"
    expected: int  # recomputed from the events
    actual: int

    def __str__(self) -> str:
        return (f"{self.account} token {self.token}: events say {self.expected}, {self.source} says {self.actual} "
                f"(difference {self.actual - self.expected})")


@dataclass
class AuditResult:
    block: int
    merchants: int
    events: int
    differences: list[Difference]


async def run_audit(db: Database, rpc: RpcClient, ctx: GatewayContext, gateway: ContractArtifact,
                    progress: Progress | None = None) -> AuditResult:
    async with db.sessions() as session, session.begin():
        # one snapshot: the indexer may commit while we read
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        cursor = (await session.execute(select(ChainCursor).where(ChainCursor.chain_id == ctx.chain_id))
                  ).scalar_one_or_none()
        final_block = cursor.finalized_number if cursor is not None else -1
        total = (await session.execute(text(
            "SELECT count(*) FROM chain.logs WHERE chain_id = :c AND final AND address = :g"),
            {"c": ctx.chain_id, "g": ctx.gateway})).scalar_one()
        merchants: dict[tuple[bytes, str], int] = {}
        treasury: dict[str, int] = {}
        done = 0
        last: tuple[int, int] = (-1, -1)
        while True:
            rows = (await session.execute(
                select(ChainLog).where(ChainLog.chain_id == ctx.chain_id, ChainLog.final.is_(True),
                                       ChainLog.address == ctx.gateway,
                                       (ChainLog.block_number, ChainLog.log_index) > last)  # type: ignore[operator]
                .order_by(ChainLog.block_number, ChainLog.log_index).limit(BATCH))).scalars().all()
            if not rows:
                break
            events = [e for e in (decode_log({
                "address": r.address, "topics": r.topics, "data": r.data, "blockNumber": hex(r.block_number),
                "blockHash": r.block_hash, "transactionHash": r.transaction_hash, "logIndex": hex(r.log_index),
            }) for r in rows) if e is not None]
            m, t = balance_deltas(events, ctx.gateway)
            for key, delta in m.items():
                merchants[key] = merchants.get(key, 0) + delta.available
            for token, tdelta in t.items():
                treasury[token] = treasury.get(token, 0) + tdelta.available
            done += len(rows)
            last = (rows[-1].block_number, rows[-1].log_index)
            if progress:
                progress("events", done, total)
        projected = await repo.merchant_balances(session, ctx.chain_id)
        projected_treasury = await repo.treasury_balances(session, ctx.chain_id)
    differences: list[Difference] = []
    keys = sorted(set(merchants) | set(projected))
    tokens = sorted(set(treasury) | set(projected_treasury) | {ctx.token})
    block = hex(final_block) if final_block >= 0 else "latest"
    calls = [("eth_call", [{"to": ctx.gateway, "data": "0x" + gateway.encode_call("balanceOf", k, tok).hex()}, block])
             for k, tok in keys]
    calls += [("eth_call", [{"to": ctx.gateway, "data": "0x" + gateway.encode_call("treasuryBalance", tok).hex()},
                            block]) for tok in tokens]
    answers: list[int] = []
    for start in range(0, len(calls), 200):
        answers += [int(a, 16) for a in await rpc.batch(calls[start:start + 200])]
        if progress:
            progress("contract", min(start + 200, len(calls)), len(calls))
    for pair, on_chain in zip(keys, answers, strict=False):
        name, tok = "merchant 0x" + pair[0].hex(), pair[1]
        expected = merchants.get(pair, 0)
        if projected.get(pair, 0) != expected:
            differences.append(Difference(name, tok, "projection", expected, projected.get(pair, 0)))
        if on_chain != expected:
            differences.append(Difference(name, tok, "contract", expected, on_chain))
    for tok, on_chain in zip(tokens, answers[len(keys):], strict=True):
        expected = treasury.get(tok, 0)
        if projected_treasury.get(tok, 0) != expected:
            differences.append(Difference("treasury", tok, "projection", expected, projected_treasury.get(tok, 0)))
        if on_chain != expected:
            differences.append(Difference("treasury", tok, "contract", expected, on_chain))
    return AuditResult(final_block, len(keys), done, differences)
