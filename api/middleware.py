"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request), and the fast lane."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import client_error_response, internal_error_response
from node.errors import NodeError
from node.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = structlog.get_logger("api.access")


class RequestContext:
    """Gives every response an ``X-Request-ID`` (the caller's, if sane), binds it to
    the logs of the request, and counts the request in Prometheus by route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or _new_request_id()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            _count(scope, getattr(route, "path", "unmatched"), status, started)


Endpoint = Callable[[Request], Awaitable[Response]]


class FastLane:
    """The busiest routes, served ahead of the framework's middleware and routing.

    Under load, the eight layers around an endpoint (Starlette's error and exception middleware,
    CORS, FastAPI's exit stack and body limit, the router, the route, ``RequestContext``) cost
    about 10% of a payment creation's CPU. An endpoint here declares no dependencies and takes a
    Starlette ``Request``; the lane gives it what those layers give it: the request id in the
    logs and the answer, Prometheus counts, and the node's error shape for ``NodeError``, HTTP
    exceptions and anything unexpected (logged, 500). A request with an ``Origin`` (a browser's,
    which needs CORS) takes the usual way, where the same endpoint is routed as well."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Endpoint] = {}

    def add(self, method: str, path: str, endpoint: Endpoint) -> None:
        self.routes[(method, path)] = endpoint

    def endpoint_for(self, scope: Scope) -> Endpoint | None:
        if scope["type"] != "http":
            return None
        endpoint = self.routes.get((scope["method"], scope["path"]))
        if endpoint is None or any(name == b"origin" for name, _ in scope["headers"]):
            return None
        return endpoint

    async def serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _incoming_request_id(scope) or _new_request_id()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        response: Response | None = None
        try:
            try:
                response = await endpoint(Request(scope, receive))
            except (NodeError, HTTPException) as exc:
                response = client_error_response(exc)
            except Exception:
                log.exception("unhandled error", path=scope["path"])
                response = internal_error_response()
            response.raw_headers.append((b"x-request-id", request_id.encode()))
            await response(scope, receive, send)
        finally:
            _count(scope, scope["path"], response.status_code if response is not None else 500, started)


_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # labelled metrics: a lookup, not labels() each time


def _count(scope: Scope, path: str, status: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    key = (scope["method"], path, status)  # (the HTTP parser admits only the methods it knows)
    children = _children.get(key)
    if children is None:
        children = _children[key] = (HTTP_REQUESTS.labels(key[0], path, str(status)), HTTP_LATENCY.labels(key[0], path))
    children[0].inc()
    children[1].observe(elapsed)
    if status >= 500:
        log.warning("request", method=scope["method"], path=scope["path"], status=status,
                    ms=round(elapsed * 1000, 1))
    structlog.contextvars.unbind_contextvars("request_id")


def _new_request_id() -> str:
    return os.urandom(16).hex()  # what uuid4().hex was, less its version bits, at a quarter of the cost


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if 0 < len(text) <= 128 and text.isprintable():
                return text
    return None
