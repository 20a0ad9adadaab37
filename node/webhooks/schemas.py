"""Pydantic shapes of the webhooks API (camelCase on the wire)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from node.webhooks.models import Delivery, DeliveryAttempt, Endpoint

EVENT_FAMILIES = ("payment", "withdrawal", "settlement", "subscription", "chain", "refund")


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_patterns(patterns: list[str]) -> list[str]:
    if not patterns:
        raise ValueError("at least one event type is required")
    for pattern in patterns:
        family, _, rest = pattern.partition(".")
        if pattern == "*":
            continue
        if family not in EVENT_FAMILIES or not rest or not all(
            part == "*" or part.replace("_", "").isalnum() for part in rest.split(".")
        ):
            raise ValueError(f"unknown event type pattern {pattern!r}")
    return sorted(set(patterns))


class _In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class EndpointIn(_In):
    url: str = Field(min_length=1, max_length=2048)
    events: list[str] = Field(default_factory=lambda: ["payment.*"], max_length=50)
    description: str = Field("", max_length=500)
    enabled: bool = True
    mode: Literal["live", "test"] = "live"

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        return _check_patterns(value)


class EndpointPatch(_In):
    url: str | None = Field(None, min_length=1, max_length=2048)
    events: list[str] | None = Field(None, max_length=50)
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = None
    mode: Literal["live", "test"] | None = None

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_patterns(value)


class ReplayIn(_In):
    since: datetime = Field(alias="from")
    until: datetime = Field(alias="to")
    endpoint_id: uuid.UUID | None = None
    include_delivered: bool = False


def endpoint_out(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": str(endpoint.id), "url": endpoint.url, "events": list(endpoint.events), "mode": endpoint.mode,
        "enabled": endpoint.enabled, "description": endpoint.description, "isSdk": endpoint.is_sdk,
        "createdAt": rfc3339(endpoint.created_at), "updatedAt": rfc3339(endpoint.updated_at),
    }


def delivery_out(delivery: Delivery) -> dict[str, Any]:
    # a disabled endpoint's deliveries wait at 'infinity': no time to show
    open_ = delivery.status in ("PENDING", "FAILED") and delivery.next_attempt_at.year < 9999
    return {
        "id": str(delivery.id), "endpointId": str(delivery.endpoint_id), "eventId": str(delivery.event_id),
        "eventType": delivery.event_type, "status": delivery.status, "attempts": delivery.attempts,
        "nextAttemptAt": rfc3339(delivery.next_attempt_at) if open_ else None,
        "lastAttemptAt": rfc3339(delivery.last_attempt_at), "deliveredAt": rfc3339(delivery.delivered_at),
        "lastStatusCode": delivery.last_status_code, "lastError": delivery.last_error,
        "createdAt": rfc3339(delivery.created_at),
    }


def attempt_out(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt, "startedAt": rfc3339(attempt.started_at), "success": attempt.success,
        "statusCode": attempt.status_code, "latencyMs": attempt.latency_ms,
        "responseExcerpt": attempt.response_excerpt, "error": attempt.error,
    }


def delivery_detail_out(delivery: Delivery, attempts: list[DeliveryAttempt]) -> dict[str, Any]:
    return {
        **delivery_out(delivery),
        "payload": orjson.loads(delivery.body),
        "attemptLog": [attempt_out(a) for a in attempts],
    }
