"""Balances, ledger, withdrawals, payout address, bank accounts and LKR settlements (merchants),
and the admin queues for withdrawals, refunds, settlements and bank accounts."""

from __future__ import annotations

import csv
import html
import io
import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import (
    RequestMeta,
    Session,
    Settings,
    require_admin_permission,
    require_permission,
    require_portal_permission,
)
from node.auth.principal import AdminPrincipal, MerchantPrincipal
from node.payments import refunds
from node.settlement import repository as repo
from node.settlement import service
from node.settlement.chainctx import gateway_context

router = APIRouter(tags=["settlement"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin settlement"])

Read = Annotated[MerchantPrincipal, Depends(require_permission("settlements:read"))]
WithdrawRead = Annotated[MerchantPrincipal, Depends(require_permission("withdrawals:read"))]
WithdrawWrite = Annotated[MerchantPrincipal, Depends(require_permission("withdrawals:write"))]
PortalWithdrawWrite = Annotated[MerchantPrincipal, Depends(require_portal_permission("withdrawals:write"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
STATUS = r"^[A-Za-z_]*$"  # a status filter is a state's name (a NUL reaching PostgreSQL would be a 500)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WithdrawalIn(Body):
    amount: str = Field(max_length=80)


class PayoutAddressIn(Body):
    address: str = Field(max_length=100)
    code: str | None = Field(default=None, max_length=20)
    recovery_code: str | None = Field(default=None, alias="recoveryCode", max_length=40)


class BankAccountIn(Body):
    bank_name: str = Field(alias="bankName", min_length=1, max_length=200)
    branch: str | None = Field(default=None, max_length=200)
    account_name: str = Field(alias="accountName", min_length=1, max_length=200)
    account_number: str = Field(alias="accountNumber", min_length=3, max_length=50, pattern=r"^[0-9A-Za-z -]+$")


class ScheduleIn(Body):
    frequency: str = Field(max_length=20)
    interval_days: int | None = Field(default=None, alias="intervalDays", ge=1, le=90)
    bank_account_id: uuid.UUID | None = Field(default=None, alias="bankAccountId")


class SettlementIn(Body):
    amount: str | None = Field(default=None, max_length=80)
    bank_account_id: uuid.UUID | None = Field(default=None, alias="bankAccountId")


class DecisionIn(Body):
    reason: str | None = Field(default=None, max_length=500, pattern=r"^[^\x00]*$")  # PostgreSQL stores no NUL


class PayoutRecordIn(Body):
    bank_reference: str = Field(alias="bankReference", min_length=1, max_length=100)
    paid_on: date = Field(alias="paidOn")


def _actor(principal: MerchantPrincipal) -> tuple[str, uuid.UUID | None]:
    return ("API_KEY", principal.api_key_id) if principal.is_api_key else ("MERCHANT_USER", principal.user_id)


def _page(page: int, per_page: int) -> tuple[int, int]:
    return (page - 1) * per_page, per_page


Page = Annotated[int, Query(ge=1, le=100_000)]
PerPage = Annotated[int, Query(alias="perPage", ge=1, le=200)]


# --- balances and ledger ----------------------------------------------------------------------------------


@router.get("/v1/settlements/balance", summary="Balances: available, incoming, reserved, lifetime totals")
async def balance(session: Session, settings: Settings, principal: Read) -> dict[str, Any]:
    return {"data": await service.balance(session, gateway_context(settings), principal.merchant_id)}


@router.get("/v1/settlements/ledger", summary="Every movement with its transaction and block")
async def ledger(session: Session, settings: Settings, principal: Read, page: Page = 1,
                 per_page: PerPage = 50) -> dict[str, Any]:
    ctx = gateway_context(settings)
    offset, limit = _page(page, per_page)
    rows, total = await repo.ledger_page(session, ctx.chain_id, ctx.merchant_key(principal.merchant_id),
                                         offset=offset, limit=limit)
    return {"data": [service.ledger_data(r) for r in rows],
            "meta": {"page": page, "perPage": per_page, "total": total}}


LEDGER_COLUMNS = ["blockNumber", "logIndex", "txHash", "kind", "amount", "fee", "token", "rate", "amountLkr",
                  "reference", "counterparty", "recordedAt"]


@router.get("/v1/settlements/ledger.csv", summary="The ledger as CSV")
async def ledger_csv(session: Session, settings: Settings, principal: Read) -> Response:
    ctx = gateway_context(settings)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LEDGER_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    offset = 0
    while True:
        rows, _ = await repo.ledger_page(session, ctx.chain_id, ctx.merchant_key(principal.merchant_id),
                                         offset=offset, limit=1000)
        for row in rows:
            writer.writerow(service.ledger_data(row))
        if len(rows) < 1000:
            break
        offset += 1000
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="ledger.csv"'})


# --- withdrawals --------------------------------------------------------------------------------------------


@router.post("/v1/withdrawals", status_code=201, summary="Request a withdrawal to the payout address")
async def request_withdrawal(body: WithdrawalIn, response: Response, session: Session, settings: Settings,
                             principal: WithdrawWrite, meta: RequestMeta,
                             idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    actor_type, actor_id = _actor(principal)
    withdrawal, created = await service.request_withdrawal(
        session, gateway_context(settings), principal.merchant_id, service.parse_amount(body.amount),
        idempotency_key=idempotency_key, actor_type=actor_type, actor_id=actor_id, meta=meta)
    if not created:
        response.status_code = 200
    return {"data": service.withdrawal_data(withdrawal)}


@router.get("/v1/withdrawals", summary="Withdrawals")
async def list_withdrawals(session: Session, principal: WithdrawRead,
                           status: str | None = Query(None, max_length=20, pattern=STATUS),
                           page: Page = 1, per_page: PerPage = 50) -> dict[str, Any]:
    offset, limit = _page(page, per_page)
    rows, total = await service.list_withdrawals(session, merchant_id=principal.merchant_id, status=status,
                                                 offset=offset, limit=limit)
    return {"data": [service.withdrawal_data(w) for w in rows],
            "meta": {"page": page, "perPage": per_page, "total": total}}


@router.get("/v1/withdrawals/{withdrawalId}", summary="A withdrawal")
async def get_withdrawal(withdrawalId: uuid.UUID, session: Session, principal: WithdrawRead) -> dict[str, Any]:
    return {"data": service.withdrawal_data(
        await service.get_withdrawal(session, withdrawalId, merchant_id=principal.merchant_id))}


# --- payout address ---------------------------------------------------------------------------------------


@router.get("/v1/payout-address", summary="The payout address (active and pending)")
async def payout_address(session: Session, principal: WithdrawRead) -> dict[str, Any]:
    rows = await service.payout_addresses(session, principal.merchant_id)
    active = next((p for p in rows if p.status == "ACTIVE"), None)
    pending = next((p for p in rows if p.status in ("PENDING", "SUBMITTED")), None)
    return {"data": {"active": service.payout_data(active) if active else None,
                     "pending": service.payout_data(pending) if pending else None}}


@router.put("/v1/payout-address", status_code=202, summary="Set a new payout address (2FA; after a cool-down)")
async def set_payout_address(body: PayoutAddressIn, session: Session, settings: Settings,
                             principal: PortalWithdrawWrite, meta: RequestMeta) -> dict[str, Any]:
    payout = await service.request_payout_address(
        session, settings, gateway_context(settings), principal.merchant_id, principal.user_id, body.address,
        code=body.code, recovery_code=body.recovery_code, meta=meta)
    return {"data": service.payout_data(payout)}


# --- bank accounts, schedule, settlements -------------------------------------------------------------------


@router.get("/v1/bank-accounts", summary="Bank accounts for LKR settlement")
async def bank_accounts(session: Session, principal: Read) -> dict[str, Any]:
    return {"data": [service.bank_account_data(b) for b in await service.list_bank_accounts(
        session, principal.merchant_id)]}


@router.post("/v1/bank-accounts", status_code=201, summary="Add a bank account (an admin verifies it)")
async def add_bank_account(body: BankAccountIn, session: Session, principal: WithdrawWrite,
                           meta: RequestMeta) -> dict[str, Any]:
    _, actor_id = _actor(principal)
    account = await service.add_bank_account(session, principal.merchant_id, bank_name=body.bank_name,
                                             branch=body.branch, account_name=body.account_name,
                                             account_number=body.account_number, actor_id=actor_id, meta=meta)
    return {"data": service.bank_account_data(account)}


@router.get("/v1/settlements/schedule", summary="The settlement schedule")
async def get_schedule(session: Session, principal: Read) -> dict[str, Any]:
    return {"data": await service.get_schedule(session, principal.merchant_id)}


@router.put("/v1/settlements/schedule", summary="Daily, weekly, every N days or on request")
async def put_schedule(body: ScheduleIn, session: Session, principal: WithdrawWrite) -> dict[str, Any]:
    return {"data": await service.set_schedule(session, principal.merchant_id, frequency=body.frequency,
                                               interval_days=body.interval_days,
                                               bank_account_id=body.bank_account_id)}


@router.post("/v1/settlements", status_code=201, summary="Settle USDT to LKR (default: all withdrawable)")
async def request_settlement(body: SettlementIn, response: Response, session: Session, settings: Settings,
                             principal: WithdrawWrite, meta: RequestMeta,
                             idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    actor_type, actor_id = _actor(principal)
    amount = service.parse_amount(body.amount) if body.amount is not None else None
    batch, created = await service.request_settlement(
        session, gateway_context(settings), principal.merchant_id, amount=amount,
        bank_account_id=body.bank_account_id, idempotency_key=idempotency_key, actor_type=actor_type,
        actor_id=actor_id, meta=meta)
    if not created:
        response.status_code = 200
    return {"data": service.batch_data(batch)}


@router.get("/v1/settlements", summary="Settlement batches")
async def list_settlements(session: Session, principal: Read,
                           status: str | None = Query(None, max_length=20, pattern=STATUS),
                           page: Page = 1, per_page: PerPage = 50) -> dict[str, Any]:
    offset, limit = _page(page, per_page)
    rows, total = await service.list_batches(session, merchant_id=principal.merchant_id, status=status,
                                             offset=offset, limit=limit)
    return {"data": [service.batch_data(b) for b in rows],
            "meta": {"page": page, "perPage": per_page, "total": total}}


@router.get("/v1/settlements/{settlementId}", summary="A settlement batch")
async def get_settlement(settlementId: uuid.UUID, session: Session, principal: Read) -> dict[str, Any]:
    return {"data": service.batch_data(
        await service.get_batch(session, settlementId, merchant_id=principal.merchant_id))}


STATEMENT_FIELDS = [("Settlement", "id"), ("Reference", "reference"), ("Status", "status"),
                    ("Amount (USDT)", "amount"), ("Rate (LKR per USDT)", "rate"), ("Amount (LKR)", "fiatAmount"),
                    ("Transaction", "txHash"), ("Block", "blockNumber"), ("Bank reference", "bankReference"),
                    ("Paid on", "paidOn"), ("Created", "createdAt")]


async def _statement(session: Session, settlement_id: uuid.UUID, merchant_id: uuid.UUID) -> dict[str, Any]:
    batch = service.batch_data(await service.get_batch(session, settlement_id, merchant_id=merchant_id))
    account = await service.get_bank_account(session, uuid.UUID(batch["bankAccountId"]))
    batch["bank"] = f"{account.bank_name} {account.account_number} ({account.account_name})"
    return batch


@router.get("/v1/settlements/{settlementId}/statement.csv", summary="Statement of a batch (CSV)")
async def statement_csv(settlementId: uuid.UUID, session: Session, principal: Read) -> Response:
    batch = await _statement(session, settlementId, principal.merchant_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([label for label, _ in STATEMENT_FIELDS] + ["Bank account"])
    writer.writerow([batch[key] if batch[key] is not None else "" for _, key in STATEMENT_FIELDS] + [batch["bank"]])
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="settlement-{settlementId}.csv"'})


@router.get("/v1/settlements/{settlementId}/statement.html", response_class=HTMLResponse,
            summary="Statement of a batch (printable)")
async def statement_html(settlementId: uuid.UUID, session: Session, principal: Read) -> HTMLResponse:
    batch = await _statement(session, settlementId, principal.merchant_id)
    rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(batch[key] or ''))}</td></tr>"
                   for label, key in [*STATEMENT_FIELDS, ("Bank account", "bank")])
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>Settlement statement</title>"
            "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:2em}"
            "@media print{button{display:none}}</style></head><body><h1>Settlement statement</h1>"
            f"<table>{rows}</table><button onclick='window.print()'>Print</button></body></html>")
    return HTMLResponse(page)


# --- admin queues --------------------------------------------------------------------------------------------


Admin_merchants_approve = Annotated[AdminPrincipal, Depends(require_admin_permission("merchants:approve"))]
Admin_merchants_read = Annotated[AdminPrincipal, Depends(require_admin_permission("merchants:read"))]
Admin_merchants_reject = Annotated[AdminPrincipal, Depends(require_admin_permission("merchants:reject"))]
Admin_withdrawals_approve = Annotated[AdminPrincipal, Depends(require_admin_permission("withdrawals:approve"))]
Admin_withdrawals_complete = Annotated[AdminPrincipal, Depends(require_admin_permission("withdrawals:complete"))]
Admin_withdrawals_read = Annotated[AdminPrincipal, Depends(require_admin_permission("withdrawals:read"))]
Admin_withdrawals_reject = Annotated[AdminPrincipal, Depends(require_admin_permission("withdrawals:reject"))]


@admin_router.get("/withdrawals", summary="Withdrawal queue")
async def admin_withdrawals(session: Session, admin: Admin_withdrawals_read,
                            status: str | None = Query(None, max_length=20, pattern=STATUS), page: Page = 1,
                            per_page: PerPage = 50) -> dict[str, Any]:
    offset, limit = _page(page, per_page)
    rows, total = await service.list_withdrawals(session, status=status, offset=offset, limit=limit)
    return {"data": [service.withdrawal_data(w) for w in rows],
            "meta": {"page": page, "perPage": per_page, "total": total}}


@admin_router.post("/withdrawals/{withdrawalId}/approve", summary="Approve a withdrawal above the threshold")
async def admin_approve(withdrawalId: uuid.UUID, session: Session, meta: RequestMeta,
                        admin: Admin_withdrawals_approve) -> dict[str, Any]:
    return {"data": service.withdrawal_data(await service.decide_withdrawal(
        session, withdrawalId, approve=True, admin_id=admin.admin_id, meta=meta))}


@admin_router.post("/withdrawals/{withdrawalId}/reject", summary="Reject a withdrawal (releases the reservation)")
async def admin_reject(withdrawalId: uuid.UUID, session: Session, meta: RequestMeta,
                       admin: Admin_withdrawals_reject,
                       body: DecisionIn | None = None) -> dict[str, Any]:
    return {"data": service.withdrawal_data(await service.decide_withdrawal(
        session, withdrawalId, approve=False, admin_id=admin.admin_id, reason=body.reason if body else None,
        meta=meta))}


@admin_router.get("/refunds", summary="Refund queue (PENDING_APPROVAL: waiting for a decision)")
async def admin_refunds(session: Session, admin: Admin_withdrawals_read,
                        status: str | None = Query(None, max_length=20, pattern=STATUS), page: Page = 1,
                        per_page: PerPage = 50) -> dict[str, Any]:
    offset, limit = _page(page, per_page)
    rows, total = await refunds.list_for_review(session, status=status, offset=offset, limit=limit)
    return {"data": [refunds.refund_object(r) for r in rows],
            "meta": {"page": page, "perPage": per_page, "total": total}}


@admin_router.post("/refunds/{refundId}/approve", summary="Approve a refund (another address, above the threshold)")
async def admin_approve_refund(refundId: uuid.UUID, session: Session, meta: RequestMeta,
                               admin: Admin_withdrawals_approve, body: DecisionIn | None = None) -> dict[str, Any]:
    return {"data": refunds.refund_object(await refunds.decide(
        session, refundId, approve=True, admin_id=admin.admin_id, note=body.reason if body else None, meta=meta))}


@admin_router.post("/refunds/{refundId}/reject", summary="Reject a refund (its amount is refundable again)")
async def admin_reject_refund(refundId: uuid.UUID, session: Session, meta: RequestMeta,
                              admin: Admin_withdrawals_reject, body: DecisionIn | None = None) -> dict[str, Any]:
    return {"data": refunds.refund_object(await refunds.decide(
        session, refundId, approve=False, admin_id=admin.admin_id, note=body.reason if body else None, meta=meta))}


@admin_router.get("/settlements", summary="Settlement queue")
async def admin_settlements(session: Session, admin: Admin_withdrawals_read,
                            status: str | None = Query(None, max_length=20, pattern=STATUS), page: Page = 1,
                            per_page: PerPage = 50) -> dict[str, Any]:
    offset, limit = _page(page, per_page)
    rows, total = await service.list_batches(session, status=status, offset=offset, limit=limit)
    return {"data": [service.batch_data(b) for b in rows],
            "meta": {"page": page, "perPage": per_page, "total": total}}


@admin_router.post("/settlements/{settlementId}/paid", summary="Record the bank payout of a settled batch")
async def admin_paid(settlementId: uuid.UUID, body: PayoutRecordIn, session: Session, meta: RequestMeta,
                     admin: Admin_withdrawals_complete) -> dict[str, Any]:
    return {"data": service.batch_data(await service.record_bank_payout(
        session, settlementId, bank_reference=body.bank_reference, paid_on=body.paid_on, admin_id=admin.admin_id,
        meta=meta))}


@admin_router.get("/bank-accounts", summary="Bank accounts (verification queue)")
async def admin_bank_accounts(session: Session, admin: Admin_merchants_read,
                              status: str | None = Query(None, max_length=20, pattern=STATUS)) -> dict[str, Any]:
    return {"data": [service.bank_account_data(b) for b in await service.list_bank_accounts(session, None, status)]}


@admin_router.post("/bank-accounts/{bankAccountId}/verify", summary="Verify a bank account")
async def admin_verify_bank(bankAccountId: uuid.UUID, session: Session, meta: RequestMeta,
                            admin: Admin_merchants_approve) -> dict[str, Any]:
    return {"data": service.bank_account_data(await service.verify_bank_account(
        session, bankAccountId, verified=True, admin_id=admin.admin_id, meta=meta))}


@admin_router.post("/bank-accounts/{bankAccountId}/reject", summary="Reject a bank account")
async def admin_reject_bank(bankAccountId: uuid.UUID, session: Session, meta: RequestMeta,
                            admin: Admin_merchants_reject) -> dict[str, Any]:
    return {"data": service.bank_account_data(await service.verify_bank_account(
        session, bankAccountId, verified=False, admin_id=admin.admin_id, meta=meta))}
