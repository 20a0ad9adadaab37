"""Errors of the webhooks domain."""

from __future__ import annotations

from node.errors import NodeError, NotFound, ValidationFailed


class InvalidWebhookConfiguration(ValidationFailed):
    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid webhook configuration: {reason}")


class WebhookNotConfigured(NotFound):
    def __init__(self, code: str = "NOT_FOUND") -> None:
        super().__init__("webhook not configured", code=code)


class EndpointNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("webhook endpoint not found")


class DeliveryNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("webhook delivery not found")


class DeliveryFailed(NodeError):
    code = "DELIVERY_FAILED"
    status = 500
