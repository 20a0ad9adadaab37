"""Payment creation and queries: rate lock, fees, risk, signed intent, deposit address.

Money: the customer pays ``amount_units`` USDT base units; ``fiat_cents`` is its LKR value at
the locked ``rate`` (LKR per USDT); the intent's ``fee`` (exchange + platform fees from the
platform settings) goes to the treasury on chain, the rest to the merchant.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from typing import Any, NamedTuple, cast

import asyncpg
import orjson
import structlog
from sqlalchemy import LargeBinary, Numeric, and_, func, or_, select, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from chain.intents import RATE_DECIMALS, PaymentIntent, payment_id, rate_to_fixed, uuid_to_bytes32
from node.admin.platform import get_settings as platform_settings
from node.auth.principal import MerchantPrincipal
from node.config import Settings
from node.db import Database
from node.db.bulk import driver_connection
from node.db.group_insert import GroupInsert
from node.errors import Forbidden, NotFound, ValidationFailed
from node.exchange import rates
from node.merchants.service import ensure_live_allowed, reserve_instant_access
from node.money import WEI_PER_TOKEN, lkr_to_cents, to_base_units
from node.payments import numbers, onchain, risk
from node.payments.models import Payment
from node.payments.schemas import PaymentRequest, payment_object

log = structlog.get_logger(__name__)

_cache: dict[str, tuple[float, Any, float]] = {}  # key -> (read at, value, ttl)
_refreshing: set[str] = set()
# per-merchant values (risk counts and normal) of merchants not seen again would stay for the
# process's life: past this many entries, expired ones are dropped (then again at twice the size left)
CACHE_PRUNE_ABOVE = 4_096
_prune_above = CACHE_PRUNE_ABOVE


_background: set[asyncio.Future[None]] = set()


async def _cached(key: str, ttl: float, load: Any, *, in_background: bool = False) -> Any:
    """``load()``'s value, re-read at most every ``ttl`` seconds. While one request
    re-reads it, the others keep the previous value instead of each running the same query: under
    load, expiry used to send every request in flight to the database at once.

    ``in_background`` (a ``load`` that needs nothing of the request, e.g. a pooled connection): the
    request that finds the value expired keeps the previous one too, and the re-read runs as a task
    of its own; a merchant's 24-hour counts took 15-100 ms on a busy table, that request's wait."""
    hit = _cache.get(key)
    now = time.monotonic()
    if hit is not None and (now - hit[0] < ttl or key in _refreshing):
        return hit[1]
    _refreshing.add(key)
    if hit is not None and in_background and ttl > 0:  # (ttl 0, tests: every read waits for its query)
        task = asyncio.ensure_future(_refresh(key, ttl, load, now))
        _background.add(task)
        task.add_done_callback(_background.discard)
        return hit[1]
    try:
        value = await load()
    finally:
        _refreshing.discard(key)
    _store(key, now, value, ttl)
    return value


async def _refresh(key: str, ttl: float, load: Any, now: float) -> None:
    try:
        _store(key, now, await load(), ttl)
    except Exception as exc:  # the previous value serves on; the next request past the ttl tries again
        log.warning("payments cache: refresh failed", key=key, error=repr(exc)[:300])
    finally:
        _refreshing.discard(key)


def _store(key: str, now: float, value: Any, ttl: float) -> None:
    _cache[key] = (now, value, ttl)
    if len(_cache) > _prune_above:
        _prune(time.monotonic())


def _prune(now: float) -> None:
    global _prune_above
    for key in [k for k, (at, _, ttl) in _cache.items() if now - at >= ttl and k not in _refreshing]:
        del _cache[key]
    _prune_above = max(CACHE_PRUNE_ABOVE, 2 * len(_cache))


async def fee_percentages(session: AsyncSession, settings: Settings) -> tuple[Decimal, Decimal]:
    async def load() -> tuple[Decimal, Decimal]:
        fees = (await platform_settings(session))["fees"]
        return Decimal(str(fees["exchangeFeePercent"])), Decimal(str(fees["platformFeePercent"]))
    result: tuple[Decimal, Decimal] = await _cached("fees", settings.payment_cache_ttl_s, load)
    return result


async def _rate(session: AsyncSession, settings: Settings, base: str, mode: str) -> rates.ActiveRate:
    async def load() -> rates.ActiveRate:
        return await rates.locked_rate(session, settings, base, "LKR", mode=mode)
    # per mode: the SEED placeholder prices test payments only
    key = f"rate:{base}:{mode}"
    rate: rates.ActiveRate = await _cached(key, settings.payment_cache_ttl_s, load)
    if rate.age_s() > settings.rate_max_age_s:  # a cached rate can go stale too
        _cache.pop(key, None)
        rate = await load()
    return rate


CHAIN_RATE_QUANTUM = Decimal(1).scaleb(-RATE_DECIMALS)


def _round_up_units(value: Decimal, decimals: int) -> int:
    with localcontext() as ctx:
        ctx.prec = 80
        quantum = Decimal(1).scaleb(-decimals)
        return to_base_units(value.quantize(quantum, rounding=ROUND_CEILING))


async def price(session: AsyncSession, settings: Settings, amount: Decimal, currency: str, mode: str = "live"
                ) -> tuple[int, int, rates.ActiveRate, Decimal | None]:
    """``(amount_units, fiat_cents, usdt_lkr_rate, exchange_rate)`` for an amount in ``currency``
    paid in ``mode`` (live or test).

    ``exchange_rate`` is units of ``currency`` per USDT (the LKR rate for LKR payments)."""
    usdt = await _rate(session, settings, "USDT", mode)
    # locked at the precision the chain carries (the intent's 8-decimal rate, rounded down): the stored
    # rate, the units and the LKR cents all come from the rate the PaymentReceived event will show
    locked = usdt.rate.quantize(CHAIN_RATE_QUANTUM, rounding=ROUND_FLOOR)
    if locked != usdt.rate:
        usdt = dataclasses.replace(usdt, rate=locked)
    with localcontext() as ctx:
        ctx.prec = 80
        if currency == "USDT":
            units = to_base_units(amount)
            return units, lkr_to_cents(amount * usdt.rate), usdt, None
        lkr = amount if currency == "LKR" else amount * (await _rate(session, settings, currency, mode)).rate
        units = _round_up_units(lkr / usdt.rate, settings.payment_usdt_decimals)
        exchange_rate = usdt.rate if currency == "LKR" else (amount / (lkr / usdt.rate)).quantize(
            Decimal(1).scaleb(-12), rounding=ROUND_HALF_UP)
        return units, lkr_to_cents(lkr), usdt, exchange_rate


def fee_units(units: int, pct: Decimal) -> int:
    return int((Decimal(units) * pct / 100).to_integral_value(rounding=ROUND_HALF_UP))


# the risk rules' inputs (node/payments/risk.py), live and test payments apart. The customer's,
# when an e-mail is given: one range of ix_payments_customer
_CUSTOMER_RISK_SQL = """
SELECT count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS hour_count,
  count(*) AS day_count,
  coalesce(sum(amount_units) FILTER (WHERE status NOT IN ('expired', 'failed')), 0) AS day_volume,
  count(*) > 0 OR EXISTS (SELECT 1 FROM payments.payments WHERE merchant_id = $1 AND customer_email = $2
                           AND mode = $3) AS known
FROM payments.payments
WHERE merchant_id = $1 AND customer_email = $2 AND mode = $3 AND created_at > now() - interval '1 day'
"""
# the merchant's: its last hour and 24 h and the average of its last 50 payments ...
_MERCHANT_RISK_SQL = """
SELECT count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS hour_count,
  count(*) AS day_count,
  coalesce(sum(amount_units) FILTER (WHERE status NOT IN ('expired', 'failed')), 0) AS day_volume,
  (SELECT avg(amount_units) FROM (SELECT amount_units FROM payments.payments WHERE merchant_id = $1 AND mode = $2
     ORDER BY created_at DESC LIMIT 50) recent) AS average
FROM payments.payments
WHERE merchant_id = $1 AND mode = $2 AND created_at > now() - interval '1 day'
"""
# ... and its normal: the baseline days before the last 24 h (``days``: how much of them its history
# covers). Re-read far less often: a week of a busy merchant's rows takes ~100 ms to add up
_MERCHANT_BASELINE_SQL = """
SELECT count(*) AS count,
  coalesce(sum(amount_units) FILTER (WHERE status NOT IN ('expired', 'failed')), 0) AS volume,
  (extract(epoch FROM now() - interval '1 day' - min(created_at)) / 86400)::numeric AS days
FROM payments.payments
WHERE merchant_id = $1 AND mode = $2 AND created_at > now() - make_interval(days => $3 + 1)
  AND created_at <= now() - interval '1 day'
"""
_OWN_BRANCH_SQL = "SELECT EXISTS (SELECT 1 FROM merchants.branches WHERE id = $1 AND merchant_id = $2)"
_sequence = numbers.IntentSequence()

# the payment rows and their ``payment.initiated`` outbox messages in one statement (one round trip)
_PAYMENT_COLUMNS = (
    "id", "merchant_id", "branch_id", "mode", "payment_no", "merchant_trade_no", "amount", "currency",
    "amount_units", "fiat_cents", "rate", "rate_source", "exchange_rate", "exchange_fee_pct", "platform_fee_pct",
    "exchange_fee_units", "platform_fee_units", "provider", "provider_pay_id", "customer_email",
    "customer_billing", "goods", "description", "success_url", "cancel_url", "webhook_url", "link_id", "source",
    "risk_score", "risk_flags", "expire_at", "created_at", "updated_at", "chain_id", "sequence", "onchain_id",
    "merchant_key", "token", "deadline", "rate_fixed", "signature", "deposit_address",
)
# what every new payment starts with, written as literals
_INITIAL = {"status": "'initiated'", "received_seen": "0", "received_final": "0", "swept": "0",
            "refunded_units": "0", "late": "false"}
# JSON has no bytes, and orjson no Decimal nor integers past 64 bits: those travel as text
_BYTES_COLUMNS = tuple(c for c in _PAYMENT_COLUMNS if isinstance(Payment.__table__.c[c].type, LargeBinary))
_TEXT_COLUMNS = tuple(c for c in _PAYMENT_COLUMNS if isinstance(Payment.__table__.c[c].type, Numeric))


def _record_definition() -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    types = [f"{c} {Payment.__table__.c[c].type.compile(dialect=dialect)}" for c in _PAYMENT_COLUMNS]
    return ", ".join((*types, "message_id uuid", "payload json"))


_INSERT_ANNOUNCED = GroupInsert(
    f"WITH new AS MATERIALIZED (SELECT * FROM json_to_recordset($1::json) AS r({_record_definition()})), "
    f"payment AS (INSERT INTO payments.payments ({', '.join((*_PAYMENT_COLUMNS, *_INITIAL))}) "
    f"SELECT {', '.join(_PAYMENT_COLUMNS)}, {', '.join(_INITIAL.values())} FROM new) "
    "INSERT INTO bus.outbox (message_id, type, key, payload) "
    "SELECT message_id, 'payment.initiated', id::text, payload FROM new"
)


def _record(values: dict[str, Any], wire: orjson.Fragment) -> bytes:
    """The payment's row and its announcement (``wire``, already JSON) as one JSON object."""
    record = {c: values[c] for c in _PAYMENT_COLUMNS}
    for c in _TEXT_COLUMNS:
        if record[c] is not None:
            record[c] = str(record[c])
    for c in _BYTES_COLUMNS:
        record[c] = "\\x" + record[c].hex()
    record["message_id"] = uuid.uuid4()
    record["payload"] = wire
    return orjson.dumps(record, default=_uuid_text)


def _uuid_text(value: Any) -> str:
    # orjson writes uuid.UUID itself, not asyncpg's subclass (ids read from the database)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


class Created(NamedTuple):
    payment: Payment
    wire: orjson.Fragment  # its wire object, rendered once for the announcement and the answer


async def create(session: AsyncSession, settings: Settings, principal: MerchantPrincipal, request: PaymentRequest,
                 *, source: str = "API", link_id: uuid.UUID | None = None) -> Payment:
    """Creates a payment for the principal's merchant; announces ``payment.initiated``."""
    created = await create_payment(session, settings, principal, request, source=source, link_id=link_id)
    return created.payment


async def create_payment(session: AsyncSession, settings: Settings, principal: MerchantPrincipal,
                         request: PaymentRequest, *, source: str = "API", link_id: uuid.UUID | None = None,
                         sole_write: bool = False) -> Created:
    """``create`` with the payment's wire object, built once for the announcement and the answer.

    ``sole_write``: the caller writes nothing else in this unit of work, so when nothing was
    written before either, the payment and its announcement need no transaction of the session:
    they go in with the payments other requests of this process create at the same moment, as
    one statement (``GroupInsert``: one transaction, no BEGIN and COMMIT round trips).
    """
    if principal.mode == "live":
        ensure_live_allowed(principal.kyc_status)
    branch_id = request.branch_id
    if principal.branch_id is not None:
        if branch_id not in (None, principal.branch_id):
            raise Forbidden("cannot create payments for another branch")
        branch_id = principal.branch_id
    now = datetime.now(UTC)
    if request.expire_at is not None:
        expire_at = request.expire_at
        if expire_at <= now + timedelta(seconds=30):
            raise ValidationFailed("invalid payment data: orderExpireTime must be in the future")
    else:
        minutes = request.expires_in_minutes or settings.payment_expiry_minutes
        # bounded before the date arithmetic: 5,000,000,000 minutes is past year 9999
        expire_at = now + timedelta(minutes=min(minutes, settings.payment_max_expiry_minutes + 1))
    if expire_at > now + timedelta(minutes=settings.payment_max_expiry_minutes):
        raise ValidationFailed("invalid payment data: expiry is too far in the future")
    dep = onchain.deployment_for_mode(settings, principal.mode)
    units, cents, usdt_rate, exchange_rate = await price(session, settings, request.amount, request.currency,
                                                         principal.mode)
    if units <= 0:
        raise ValidationFailed("invalid payment data: amount must be positive")
    if units > 10**12 * WEI_PER_TOKEN:
        raise ValidationFailed("invalid payment data: amount is out of range")
    exchange_pct, platform_pct = await fee_percentages(session, settings)
    exchange_fee, platform_fee = fee_units(units, exchange_pct), fee_units(units, platform_pct)
    if principal.mode == "live":
        await reserve_instant_access(session, settings, principal.merchant_id, units)
    database: Database | None = session.info.get("database")
    pool = (await database.driver_pool()
            if sole_write and database is not None and not session.in_transaction() else None)
    reads: Reads = pool.acquire if pool is not None else functools.partial(_in_session, session)
    if branch_id is not None and principal.branch_id is None:
        async with reads() as driver:
            if not await driver.fetchval(_OWN_BRANCH_SQL, branch_id, principal.merchant_id):
                raise ValidationFailed("invalid payment data: branchId is not a branch of this merchant")
    merchant_stats, customer_stats = await _risk_inputs(reads, settings, principal.merchant_id, principal.mode,
                                                        request.customer_email, detached=pool is not None)
    scored = risk.score(units, merchant_stats, customer_stats, settings)
    risk.check(scored, settings)
    pid = uuid.uuid4()
    sequence = await _sequence.next(reads)
    deadline = int(expire_at.timestamp())
    intent = PaymentIntent(
        payment_id=payment_id(pid, sequence), merchant_id=uuid_to_bytes32(principal.merchant_id),
        token=dep.token, amount=units, fee=exchange_fee + platform_fee, fiat_amount=cents,
        rate=rate_to_fixed(usdt_rate.rate), deadline=deadline,
    )
    dom = onchain.domain(dep)
    signature, deposit = onchain.sign_and_deposit(intent, dom, dep.forwarder_implementation,
                                                  settings.operator_key.get_secret_value())
    values: dict[str, Any] = dict(
        id=pid, merchant_id=principal.merchant_id, branch_id=branch_id, mode=principal.mode,
        payment_no=numbers.payment_no(settings, now, sequence), merchant_trade_no=request.merchant_trade_no,
        amount=request.amount,
        currency=request.currency, amount_units=units, fiat_cents=cents, rate=usdt_rate.rate,
        rate_source=usdt_rate.source, exchange_rate=exchange_rate, exchange_fee_pct=exchange_pct,
        platform_fee_pct=platform_pct, exchange_fee_units=exchange_fee, platform_fee_units=platform_fee,
        provider=request.provider,
        provider_pay_id=numbers.provider_pay_id(settings, request.provider, sequence),
        status="initiated", customer_email=request.customer_email, customer_billing=request.customer_billing,
        goods=request.goods, description=request.description, success_url=request.success_url,
        cancel_url=request.cancel_url, webhook_url=request.webhook_url, link_id=link_id, source=source,
        risk_score=scored.score, risk_flags=scored.flags, expire_at=expire_at, created_at=now, updated_at=now,
        chain_id=dep.chain_id, sequence=sequence, onchain_id=intent.payment_id, merchant_key=intent.merchant_id,
        token=dep.token.lower(), deadline=deadline, rate_fixed=intent.rate,
        signature=signature, deposit_address=deposit, received_seen=0, received_final=0, swept=0,
        refunded_units=0, late=False,
    )
    # the API's hot path: one prepared statement on the driver instead of an ORM flush and a
    # second insert; the returned object is detached, its fields are what was stored (the
    # creation's answer equals the stored payment's GET: tests/api/test_sdk_payments.py)
    payment = _transient(values)
    wire = orjson.Fragment(orjson.dumps(payment_object(cast(Payment, _PlainFields(values)), settings.public_url)))
    record = _record(values, wire)
    if pool is not None:
        await _INSERT_ANNOUNCED.insert(pool, record)
    else:
        await _INSERT_ANNOUNCED.insert_in(await driver_connection(session), record)
    merchant_stats.add(units)
    return Created(payment, wire)


Reads = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]  # a connection for the occasional read


@asynccontextmanager
async def _in_session(session: AsyncSession) -> AsyncIterator[asyncpg.Connection]:
    yield await driver_connection(session)


async def _risk_inputs(reads: Reads, settings: Settings, merchant_id: uuid.UUID, mode: str,
                       customer_email: str | None, *, detached: bool = False
                       ) -> tuple[risk.MerchantStats, risk.CustomerStats | None]:
    """``detached``: ``reads`` takes a pooled connection of its own (no session of the request), so
    the merchant's figures may be re-read in the background."""
    async def baseline() -> risk.MerchantNormal:
        async with reads() as driver:
            row = await driver.fetchrow(_MERCHANT_BASELINE_SQL, merchant_id, mode, settings.risk_baseline_days)
        assert row is not None
        days = row["days"]
        if days is None or days < 1:  # less than a day of history says nothing of its normal
            return risk.merchant_normal(None, None, settings)
        return risk.merchant_normal(Decimal(row["count"]) / days, Decimal(row["volume"]) / days, settings)
    # its normal every risk_baseline_ttl_s; its counts every risk_stats_ttl_s, counted forward by
    # the payments this process creates meanwhile (what other processes created is seen at the next read)
    normal: risk.MerchantNormal = await _cached(f"risk-baseline:{merchant_id}:{mode}", settings.risk_baseline_ttl_s,
                                                baseline, in_background=detached)

    async def merchant_stats() -> risk.MerchantStats:
        async with reads() as driver:
            row = await driver.fetchrow(_MERCHANT_RISK_SQL, merchant_id, mode)
        assert row is not None
        return risk.merchant_stats(int(row["hour_count"]), int(row["day_count"]), int(row["day_volume"]),
                                   int(row["average"]) if row["average"] is not None else None, normal, settings)
    merchant: risk.MerchantStats = await _cached(f"risk:{merchant_id}:{mode}", settings.risk_stats_ttl_s,
                                                 merchant_stats, in_background=detached)
    merchant.normal = normal
    if not customer_email:
        return merchant, None
    async with reads() as driver:
        row = await driver.fetchrow(_CUSTOMER_RISK_SQL, merchant_id, customer_email, mode)
    assert row is not None
    return merchant, risk.CustomerStats(int(row["hour_count"]), int(row["day_count"]), int(row["day_volume"]),
                                        bool(row["known"]))


def _transient(values: dict[str, Any]) -> Payment:
    # filled the way the ORM fills a loaded row, without an attribute event per column: the
    # instrumented constructor costs ~50 us here, on every payment
    payment: Payment = Payment.__mapper__.class_manager.new_instance()
    payment.__dict__.update(values)
    return payment


class _PlainFields:
    """A new payment's fields as plain attributes, for rendering: reading the ORM object costs an
    instrumented attribute access per field (about 50 of them in the wire object)."""

    tx_hash = paid_at = late_decision = payer = block_number = late_from = None  # not known at creation

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    @property
    def fee_units(self) -> int:
        return int(self.__dict__["exchange_fee_units"] + self.__dict__["platform_fee_units"])


def intent_of(p: Payment) -> PaymentIntent:
    return PaymentIntent(payment_id=bytes(p.onchain_id), merchant_id=bytes(p.merchant_key), token=p.token,
                         amount=int(p.amount_units), fee=int(p.fee_units), fiat_amount=int(p.fiat_cents),
                         rate=int(p.rate_fixed), deadline=int(p.deadline))


# ------------------------------------------------------------------ queries


async def get_owned(session: AsyncSession, principal: MerchantPrincipal, payment_id_: uuid.UUID,
                    *, for_update: bool = False) -> Payment:
    query = select(Payment).where(Payment.id == payment_id_, Payment.merchant_id == principal.merchant_id)
    if principal.branch_id is not None:
        query = query.where(Payment.branch_id == principal.branch_id)
    if for_update:
        query = query.with_for_update()
    payment = (await session.execute(query)).scalar_one_or_none()
    if payment is None:
        raise NotFound("payment not found")
    return payment


async def get_public(session: AsyncSession, payment_id_: uuid.UUID) -> Payment:
    payment = await session.get(Payment, payment_id_)
    if payment is None:
        raise NotFound("payment not found")
    return payment


async def list_payments(session: AsyncSession, principal: MerchantPrincipal, *, statuses: tuple[str, ...] | None,
                        search: str | None, branch_id: uuid.UUID | None, date_from: datetime | None,
                        date_to: datetime | None, page: int, per_page: int, mode: str | None = None
                        ) -> tuple[list[Payment], int]:
    condition = _listed(principal, statuses=statuses, search=search, branch_id=branch_id, date_from=date_from,
                        date_to=date_to, mode=mode)
    total = int((await session.execute(select(func.count()).select_from(Payment).where(condition))).scalar_one())
    offset = (page - 1) * per_page
    if offset >= total:  # past the end (a page number of any size: no OFFSET that overflows a bigint)
        return [], total
    rows = (await session.execute(select(Payment).where(condition)
                                  .order_by(Payment.created_at.desc(), Payment.id.desc())
                                  .offset(offset).limit(per_page))).scalars()
    return list(rows), total


async def export_page(session: AsyncSession, principal: MerchantPrincipal, *, after: tuple[datetime, uuid.UUID] | None,
                      limit: int, **filters: Any) -> list[Payment]:
    """The next ``limit`` payments of the list (newest first) after ``after`` (the last one's
    ``(created_at, id)``): an export reads every row once, however many arrive meanwhile."""
    condition = _listed(principal, **filters)
    if after is not None:
        condition = and_(condition, tuple_(Payment.created_at, Payment.id) < tuple_(*after))
    return list((await session.execute(select(Payment).where(condition)
                                       .order_by(Payment.created_at.desc(), Payment.id.desc()).limit(limit))).scalars())


def check_search(search: str) -> None:
    if "\x00" in search or len(search) > 200:
        raise ValidationFailed("search must be at most 200 characters, without NUL")


def _listed(principal: MerchantPrincipal, *, statuses: tuple[str, ...] | None, search: str | None,
            branch_id: uuid.UUID | None, date_from: datetime | None, date_to: datetime | None,
            mode: str | None) -> Any:
    where: list[Any] = [Payment.merchant_id == principal.merchant_id]
    if principal.branch_id is not None:
        where.append(Payment.branch_id == principal.branch_id)
    elif branch_id is not None:
        where.append(Payment.branch_id == branch_id)
    if statuses is not None:
        where.append(Payment.status.in_(statuses))
    if mode:
        where.append(Payment.mode == mode)
    if search:
        check_search(search)
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(Payment.payment_no.ilike(pattern), Payment.merchant_trade_no.ilike(pattern),
                         Payment.customer_email.ilike(pattern)))
    if date_from is not None:
        where.append(Payment.created_at >= date_from)
    if date_to is not None:
        where.append(Payment.created_at <= date_to)
    return and_(*where)


async def by_provider_pay_id(session: AsyncSession, provider_pay_id: str) -> Payment:
    if "\x00" in provider_pay_id:  # no such id, and nothing PostgreSQL's text can hold
        raise NotFound("payment not found")
    payment = (await session.execute(select(Payment).where(Payment.provider_pay_id == provider_pay_id)
                                     )).scalar_one_or_none()
    if payment is None:
        raise NotFound("payment not found")
    return payment


# ------------------------------------------------------------------ idempotency


async def idempotent_claim(session: AsyncSession, merchant_id: uuid.UUID, scope: str, key: str, body_hash: str
                           ) -> tuple[int, dict[str, Any]] | None:
    """Claims ``key`` for this request, or returns the stored answer of the request that holds it
    (a concurrent holder is waited for by PostgreSQL's unique index). Another body -> 409."""
    from node.payments.models import IdempotencyRecord as R

    if not key or len(key) > 200:
        raise ValidationFailed("Idempotency-Key must be 1-200 characters")
    inserted = (await session.execute(
        insert(R).values(merchant_id=merchant_id, scope=scope, key=key, body_hash=body_hash, status=0, response={})
        .on_conflict_do_nothing().returning(R.key))).first()
    if inserted is not None:
        return None
    row = (await session.execute(select(R).where(R.merchant_id == merchant_id, R.scope == scope, R.key == key)
                                 )).scalar_one()
    if row.body_hash != body_hash:
        raise IdempotencyKeyReused("this Idempotency-Key was used with another request body")
    return row.status, row.response


async def idempotent_store(session: AsyncSession, merchant_id: uuid.UUID, scope: str, key: str, status: int,
                           response: dict[str, Any]) -> None:
    from sqlalchemy import update

    from node.payments.models import IdempotencyRecord as R

    await session.execute(update(R).where(R.merchant_id == merchant_id, R.scope == scope, R.key == key)
                          .values(status=status, response=response))


class IdempotencyKeyReused(ValidationFailed):
    code = "IDEMPOTENCY_KEY_REUSED"
    status = 409
