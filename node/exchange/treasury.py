"""The treasury: on-chain balances (fees + settled funds), withdrawals to an exchange deposit
address with two-person approval above a threshold, and exchange operations recorded so that an
exchange error never leaves one half-recorded.

An exchange order is written PENDING (our id as the client order id) and committed before the
exchange is asked; the answer turns it OPEN/CLOSED, an error turns it FAILED with the error's code.
Nothing is recorded as done that the exchange did not confirm.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin import audit
from node.auth.context import RequestMeta
from node.config import Settings
from node.db import Database
from node.errors import NotFound
from node.exchange.exchanges import Exchange, ExchangeError, exchange_for
from node.exchange.treasury_models import ExchangeOrder, TreasuryWithdrawalRequest
from node.money import format_decimal, format_units, parse_decimal, to_base_units
from node.settlement import repository as settlement_repo
from node.settlement.chainctx import GatewayContext
from node.settlement.errors import InsufficientBalance, InvalidAddress, InvalidTransition, SameApprover

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
IN_FLIGHT = ("REQUESTED", "APPROVED", "SUBMITTED")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _d(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


def withdrawal_data(t: TreasuryWithdrawalRequest) -> dict[str, Any]:
    return {"id": str(t.id), "amount": format_units(int(t.amount)), "token": t.token, "toAddress": t.to_address,
            "exchange": t.exchange, "status": t.status, "requestedBy": str(t.requested_by),
            "approvedBy": str(t.approved_by) if t.approved_by else None, "txHash": t.tx_hash, "reason": t.reason,
            "createdAt": _iso(t.created_at)}


def order_data(o: ExchangeOrder) -> dict[str, Any]:
    return {"id": str(o.id), "exchange": o.exchange, "symbol": o.symbol, "side": o.side, "type": o.order_type,
            "amount": _d(o.amount), "price": _d(o.price), "status": o.status,
            "exchangeOrderId": o.exchange_order_id, "filled": _d(o.filled),
            "errorCode": o.error_code, "error": o.error, "createdAt": _iso(o.created_at)}


async def balances(session: AsyncSession, ctx: GatewayContext) -> dict[str, Any]:
    treasury = await settlement_repo.treasury_balances(session, ctx.chain_id)
    reserved = (await session.execute(select(func.coalesce(func.sum(TreasuryWithdrawalRequest.amount), 0)).where(
        TreasuryWithdrawalRequest.chain_id == ctx.chain_id, TreasuryWithdrawalRequest.status.in_(IN_FLIGHT))
    )).scalar_one()
    available = treasury.get(ctx.token, 0)
    return {"chainId": ctx.chain_id, "token": ctx.token, "available": format_units(available),
            "reserved": format_units(int(reserved)), "withdrawable": format_units(max(available - int(reserved), 0))}


async def request_withdrawal(session: AsyncSession, settings: Settings, ctx: GatewayContext, *, amount: int,
                             to_address: str, exchange: str | None, admin_id: uuid.UUID,
                             meta: RequestMeta | None = None) -> TreasuryWithdrawalRequest:
    """Above ``treasury_approval_threshold_usdt`` a second treasurer must approve; below, it is approved."""
    if not ADDRESS.match(to_address or "") or int(to_address, 16) == 0:
        raise InvalidAddress("toAddress must be a 0x-prefixed 20-byte hex address")
    await session.execute(select(func.pg_advisory_xact_lock(0x7EA5)))
    info = await balances(session, ctx)
    free = to_base_units(parse_decimal(info["withdrawable"]))
    if amount > free:
        raise InsufficientBalance(f"the treasury has {format_units(free)} USDT free")
    threshold = to_base_units(parse_decimal(settings.treasury_approval_threshold_usdt))
    request = TreasuryWithdrawalRequest(id=uuid.uuid4(), chain_id=ctx.chain_id, token=ctx.token, amount=amount,
                                        to_address=to_address.lower(), exchange=exchange,
                                        status="REQUESTED" if amount > threshold else "APPROVED",
                                        requested_by=admin_id)
    session.add(request)
    await session.flush()
    await audit.record(session, action="treasury.withdrawal_requested", actor_type="ADMIN", actor_id=admin_id,
                       resource_type="treasury_withdrawal", resource_id=request.id,
                       details={"amount": format_units(amount), "toAddress": request.to_address,
                                "status": request.status}, meta=meta)
    return request


async def approve_withdrawal(session: AsyncSession, request_id: uuid.UUID, *, admin_id: uuid.UUID, approve: bool,
                             meta: RequestMeta | None = None) -> TreasuryWithdrawalRequest:
    request = (await session.execute(select(TreasuryWithdrawalRequest).where(
        TreasuryWithdrawalRequest.id == request_id).with_for_update())).scalar_one_or_none()
    if request is None:
        raise NotFound("treasury withdrawal not found")
    if request.status != "REQUESTED":
        raise InvalidTransition(f"a {request.status} treasury withdrawal cannot be decided")
    if request.requested_by == admin_id:
        raise SameApprover("a second treasurer must approve this withdrawal")
    request.status = "APPROVED" if approve else "REJECTED"
    request.approved_by = admin_id
    request.updated_at = datetime.now(UTC)
    await audit.record(session, action=f"treasury.withdrawal_{request.status.lower()}", actor_type="ADMIN",
                       actor_id=admin_id, resource_type="treasury_withdrawal", resource_id=request.id,
                       changes={"status": ["REQUESTED", request.status]}, meta=meta)
    return request


async def list_withdrawals(session: AsyncSession, limit: int = 100) -> list[TreasuryWithdrawalRequest]:
    rows = await session.execute(select(TreasuryWithdrawalRequest)
                                 .order_by(TreasuryWithdrawalRequest.created_at.desc()).limit(limit))
    return list(rows.scalars())


# --- exchange operations (each its own transactions: never hold a DB transaction across a network call) ---


async def sell_usdt(db: Database, settings: Settings, exchange_name: str, amount: Decimal, *,
                    price: Decimal | None = None, admin_id: uuid.UUID | None = None,
                    exchange: Exchange | None = None) -> ExchangeOrder:
    order_id = uuid.uuid4()
    async with db.unit_of_work() as session:
        session.add(ExchangeOrder(id=order_id, exchange=exchange_name, symbol="USDT/USD", side="sell",
                                  order_type="market" if price is None else "limit", amount=amount, price=price,
                                  status="PENDING", requested_by=admin_id, details={}))
    client = exchange or exchange_for(settings, exchange_name)
    try:
        placed = await client.sell_usdt(amount, price=price, client_order_id=order_id.hex)
    except ExchangeError as exc:
        async with db.unit_of_work() as session:
            row = await session.get(ExchangeOrder, order_id)
            assert row is not None
            row.status, row.error_code, row.error, row.updated_at = "FAILED", exc.code, exc.message, datetime.now(UTC)
        raise
    finally:
        if exchange is None:
            await client.close()
    async with db.unit_of_work() as session:
        row = await session.get(ExchangeOrder, order_id)
        assert row is not None
        row.status = placed.status.upper()
        row.exchange_order_id, row.filled, row.updated_at = placed.id, placed.filled, datetime.now(UTC)
        await session.flush()
        return row


async def refresh_order(db: Database, settings: Settings, order_id: uuid.UUID, *,
                        exchange: Exchange | None = None) -> ExchangeOrder:
    async with db.unit_of_work() as session:
        row = await session.get(ExchangeOrder, order_id)
        if row is None or row.exchange_order_id is None:
            raise NotFound("exchange order not found")
        name, remote_id, symbol = row.exchange, row.exchange_order_id, row.symbol
    client = exchange or exchange_for(settings, name)
    try:
        status = await client.order_status(remote_id, symbol)
    finally:
        if exchange is None:
            await client.close()
    async with db.unit_of_work() as session:
        row = await session.get(ExchangeOrder, order_id)
        assert row is not None
        row.status, row.filled, row.updated_at = status.status.upper(), status.filled, datetime.now(UTC)
        await session.flush()
        return row


async def exchange_overview(settings: Settings, exchange_name: str, *, exchange: Exchange | None = None
                            ) -> dict[str, Any]:
    """Balances, the USDT/USD price and the BSC deposit address of one exchange (read only)."""
    client = exchange or exchange_for(settings, exchange_name)
    try:
        held = await client.balances()
        ticker = await client.ticker()
        deposit = await client.deposit_address("USDT", network="BSC")
    finally:
        if exchange is None:
            await client.close()
    return {"exchange": exchange_name,
            "balances": {c: {"free": _d(b.free), "used": _d(b.used), "total": _d(b.total)} for c, b in held.items()},
            "ticker": {"symbol": ticker.symbol, "bid": _d(ticker.bid), "ask": _d(ticker.ask), "last": _d(ticker.last)},
            "depositAddress": {"address": deposit.address, "network": deposit.network, "tag": deposit.tag}}
