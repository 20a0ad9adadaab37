"""The treasury (admins): on-chain balances, withdrawals to an exchange, exchange balances and sales."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.deps import RequestMeta, Resources, Session, Settings, require_admin_permission
from node.auth.principal import AdminPrincipal
from node.errors import NotFound, ValidationFailed
from node.exchange import treasury
from node.exchange.exchanges import EXCHANGES
from node.money import InvalidAmount, parse_decimal
from node.settlement import service as settlement
from node.settlement.chainctx import gateway_context

router = APIRouter(prefix="/v1/admin/treasury", tags=["admin treasury"])

TreasuryRead = Annotated[AdminPrincipal, Depends(require_admin_permission("treasury:read"))]
TreasuryManage = Annotated[AdminPrincipal, Depends(require_admin_permission("treasury:manage"))]


class TreasuryWithdrawalIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    amount: str = Field(max_length=80)
    to_address: str = Field(alias="toAddress", max_length=100)
    exchange: str | None = Field(default=None, max_length=20)


class SaleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: str = Field(max_length=80)
    price: str | None = Field(default=None, max_length=80)


def _exchange(name: str) -> str:
    if name not in EXCHANGES:
        raise NotFound(f"unknown exchange {name[:20]}", code="EXCHANGE_NOT_FOUND")
    return name


def _positive(text: str, field: str) -> Decimal:
    try:
        value = parse_decimal(text)
    except InvalidAmount:
        raise ValidationFailed(f"{field} must be a decimal string", code="INVALID_AMOUNT") from None
    if value <= 0:
        raise ValidationFailed(f"{field} must be positive", code="INVALID_AMOUNT")
    return value


@router.get("", summary="Treasury balance on chain (fees + settled funds)")
async def balances(session: Session, settings: Settings, admin: TreasuryRead) -> dict[str, Any]:
    return {"data": await treasury.balances(session, gateway_context(settings))}


@router.get("/withdrawals", summary="Treasury withdrawals")
async def list_withdrawals(session: Session, admin: TreasuryRead) -> dict[str, Any]:
    return {"data": [treasury.withdrawal_data(t) for t in await treasury.list_withdrawals(session)]}


@router.post("/withdrawals", status_code=201, summary="Withdraw treasury funds to an exchange deposit address")
async def request_withdrawal(body: TreasuryWithdrawalIn, session: Session, settings: Settings, meta: RequestMeta,
                             admin: TreasuryManage) -> dict[str, Any]:
    if body.exchange is not None:
        _exchange(body.exchange)
    request = await treasury.request_withdrawal(
        session, settings, gateway_context(settings), amount=settlement.parse_amount(body.amount),
        to_address=body.to_address, exchange=body.exchange, admin_id=admin.admin_id, meta=meta)
    return {"data": treasury.withdrawal_data(request)}


@router.post("/withdrawals/{withdrawalId}/approve", summary="Second treasurer's approval")
async def approve(withdrawalId: uuid.UUID, session: Session, meta: RequestMeta, admin: TreasuryManage
                  ) -> dict[str, Any]:
    return {"data": treasury.withdrawal_data(await treasury.approve_withdrawal(
        session, withdrawalId, admin_id=admin.admin_id, approve=True, meta=meta))}


@router.post("/withdrawals/{withdrawalId}/reject", summary="Reject a treasury withdrawal")
async def reject(withdrawalId: uuid.UUID, session: Session, meta: RequestMeta, admin: TreasuryManage
                 ) -> dict[str, Any]:
    return {"data": treasury.withdrawal_data(await treasury.approve_withdrawal(
        session, withdrawalId, admin_id=admin.admin_id, approve=False, meta=meta))}


@router.get("/exchanges/{exchange}", summary="An exchange: balances, USDT/USD price, BSC deposit address")
async def exchange_overview(exchange: str, settings: Settings, admin: TreasuryRead) -> dict[str, Any]:
    return {"data": await treasury.exchange_overview(settings, _exchange(exchange))}


@router.post("/exchanges/{exchange}/sell", status_code=201, summary="Sell USDT (market, or limit with a price)")
async def sell(exchange: str, body: SaleIn, resources: Resources, settings: Settings, admin: TreasuryManage
               ) -> dict[str, Any]:
    price = _positive(body.price, "price") if body.price is not None else None
    order = await treasury.sell_usdt(resources.db, settings, _exchange(exchange), _positive(body.amount, "amount"),
                                     price=price, admin_id=admin.admin_id)
    return {"data": treasury.order_data(order)}


@router.post("/orders/{orderId}/refresh", summary="Read an order's status from its exchange")
async def refresh(orderId: uuid.UUID, resources: Resources, settings: Settings, admin: TreasuryRead
                  ) -> dict[str, Any]:
    return {"data": treasury.order_data(await treasury.refresh_order(resources.db, settings, orderId))}
