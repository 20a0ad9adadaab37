"""The one root of the node's domain errors.

Every error a client can cause is a ``NodeError`` with a stable ``code``; the API
renders them all through one handler as ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations


class NodeError(Exception):
    code: str = "INTERNAL_ERROR"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class NotFound(NodeError):
    code = "NOT_FOUND"
    status = 404


class Conflict(NodeError):
    code = "CONFLICT"
    status = 409


class ValidationFailed(NodeError):
    code = "VALIDATION_ERROR"
    status = 400


class Forbidden(NodeError):
    code = "FORBIDDEN"
    status = 403


class Unauthorized(NodeError):
    code = "UNAUTHORIZED"
    status = 401


class ServiceUnavailable(NodeError):
    code = "SERVICE_UNAVAILABLE"
    status = 503
