"""One error shape for every answer that is not a success: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.responses import JSON
from node.errors import NodeError

log = structlog.get_logger(__name__)

HTTP_CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED", 503: "SERVICE_UNAVAILABLE",
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSON:
    return JSON({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return "INVALID_JSON", "malformed request body"
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header"))
    detail = str(first.get("msg", "invalid input"))
    return "VALIDATION_ERROR", f"{where}: {detail}" if where else detail


def client_error_response(exc: NodeError | StarletteHTTPException) -> JSON:
    """The answer to a request the node refuses: a ``NodeError`` or an HTTP exception."""
    if isinstance(exc, NodeError):
        return error_response(exc.status, exc.code, exc.message, getattr(exc, "headers", None))
    code = HTTP_CODES.get(exc.status_code, "ERROR")
    message = {404: "route not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, code, message, dict(exc.headers or {}))


def internal_error_response() -> JSON:
    return error_response(500, "INTERNAL_ERROR", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NodeError)
    async def node_error(request: Request, exc: NodeError) -> JSON:
        return client_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSON:
        return client_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSON:
        code, message = _validation_message(exc)
        return error_response(400, code, message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSON:
        log.exception("unhandled error", path=request.url.path)
        return internal_error_response()
