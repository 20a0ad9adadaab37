"""Errors of the notifications domain."""

from __future__ import annotations

from node.errors import NotFound, ValidationFailed


class TemplateNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"e-mail template {name!r} not found")


class InvalidTemplate(ValidationFailed):
    code = "INVALID_TEMPLATE"


class NotificationNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("notification not found")
