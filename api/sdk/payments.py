"""The wire protocol's payment routes (sdk-wire-protocol.md section 2), byte-compatible."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from api.deps import ApiKeyMerchant, Session, Settings, hmac_principal, refuse_bearer_for_api_key_route
from api.payments_common import idempotent, json_body, require
from api.responses import JSON
from node.errors import Forbidden, NotFound
from node.payments import service, states
from node.payments.models import Payment
from node.payments.schemas import STATES_OF_WIRE, parse_payment_request, parse_uuid

router = APIRouter(prefix="/v1/sdk/payments", tags=["sdk"])


@router.post("", status_code=201, summary="Create a payment")
async def create_payment(request: Request) -> JSON:
    # the busiest route declares no dependencies (FastAPI's resolution costs every request):
    # the same unit of work and authentication as ApiKeyMerchant, called directly
    refuse_bearer_for_api_key_route(request)
    settings = request.app.state.settings
    async with request.app.state.resources.db.unit_of_work() as session:
        principal, decision = await hmac_principal(request, session)
        require(principal, "payments:write")

        async def run() -> tuple[int, dict[str, object]]:
            body = parse_payment_request(await json_body(request))
            created = await service.create_payment(session, settings, principal, body, source="SDK",
                                                   sole_write=True)
            return 201, {"data": created.wire}

        response = await idempotent(request, session, principal, "sdk.payments", run)
    if decision is not None:
        response.headers.update(decision.headers())
    return response


@router.get("/{id}", summary="Get a payment")
async def get_payment(id: str, session: Session, settings: Settings, principal: ApiKeyMerchant) -> JSON:
    require(principal, "payments:read")
    payment = await session.get(Payment, parse_uuid(id))
    if payment is None:
        raise NotFound("payment not found")
    if payment.merchant_id != principal.merchant_id or (
            principal.branch_id is not None and payment.branch_id != principal.branch_id):
        raise Forbidden("cannot access another merchant's payment")
    return JSON({"data": await states.wire_object(session, settings.public_url, payment)})


# the reference server's query numbers (Go's strconv.Atoi): plain digits of a signed 64-bit int;
# anything else, or < 1, is invalid and takes the default (spec: invalid page -> 1)
_INT64_MAX = 2**63 - 1


def _int(value: str | None, default: int) -> int:
    if value is None or not value.isascii() or not value.isdigit():
        return default
    number = int(value)
    return number if 0 < number <= _INT64_MAX else default


def _time(value: str | None) -> datetime | None:
    """A ``dateFrom``/``dateTo`` filter; one that is not an RFC3339 time with an offset is ignored,
    as the reference server ignores it. One whose UTC value is before year 1 or after 9999 (which
    Python cannot hold) stands for the earliest or the latest time there is."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return (datetime.min if parsed.year == 1 else datetime.max).replace(tzinfo=UTC)


@router.get("", summary="List payments")
async def list_payments(request: Request, session: Session, settings: Settings, principal: ApiKeyMerchant) -> JSON:
    require(principal, "payments:read")
    q = request.query_params
    page = _int(q.get("page"), 1)
    asked = _int(q.get("perPage"), 20)
    per_page = asked if asked <= 100 else 20
    status = q.get("status")
    branch = q.get("branchId")
    branch_id = None
    if branch:
        try:
            branch_id = parse_uuid(branch)
        except Exception:
            branch_id = None
    rows, total = await service.list_payments(
        session, principal, statuses=STATES_OF_WIRE.get(status, ("__none__",)) if status else None,
        search=q.get("search") or None, branch_id=branch_id, date_from=_time(q.get("dateFrom")),
        date_to=_time(q.get("dateTo")), page=page, per_page=per_page)
    return JSON({"data": await states.wire_objects(session, settings.public_url, rows),
                 "meta": {"total": total, "page": page, "perPage": asked}})
