"""The API application: ``create_app(settings)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.errors import install_error_handlers
from api.middleware import FastLane, RequestContext
from api.routes import admin, api_keys, auth, branches, health, merchants, users
from api.routes import exchange as exchange_routes
from api.routes import links as link_routes
from api.routes import notifications as notification_routes
from api.routes import payments as payment_routes
from api.routes import settlement as settlement_routes
from api.routes import treasury as treasury_routes
from api.routes import webhooks as webhook_routes
from api.sdk import checkout as sdk_checkout
from api.sdk import payments as sdk_payments
from api.sdk import webhooks as sdk_webhooks
from node.config import Settings
from node.resources import Resources
from node.runtime import tune_gc


class NodeAPI(FastAPI):
    """FastAPI, with the routes of ``fast_lane`` served ahead of its middleware stack."""

    fast_lane: FastLane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.fast_lane.endpoint_for(scope)
        if endpoint is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await self.fast_lane.serve(endpoint, scope, receive, send)


def create_app(settings: Settings, resources: Resources | None = None) -> NodeAPI:
    """Build the app. With ``resources`` given (tests) the caller owns the connections."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = resources is None
        if owned:
            app.state.resources = await Resources.open(settings, name="api")
            tune_gc()
        try:
            yield
        finally:
            if owned:
                await app.state.resources.close()

    app = NodeAPI(
        title="Open Pay node",
        version="0.1.0",
        description="Self-hosted crypto payments: USDT on BNB Smart Chain, priced and settled in LKR.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    if resources is not None:
        app.state.resources = resources
    install_error_handlers(app)
    app.add_middleware(
        CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
        allow_headers=["*"], expose_headers=["X-Request-ID", "Retry-After", "X-RateLimit-Limit",
                                             "X-RateLimit-Remaining", "X-RateLimit-Reset"],
        max_age=86400,
    )
    app.add_middleware(RequestContext)
    # routes are matched in order, one after another (~2 us each): the hot paths come first. The
    # busiest one goes by the fast lane (api/middleware.py), and, for a browser's request, is a
    # plain Starlette route ahead of all (it declares no dependencies: FastAPI's dependency solving
    # and wrapper layers cost every request); the FastAPI route behind it stays for the OpenAPI document
    app.fast_lane = FastLane()
    app.fast_lane.add("POST", "/v1/sdk/payments", sdk_payments.create_payment)
    app.router.routes.insert(0, Route("/v1/sdk/payments", sdk_payments.create_payment, methods=["POST"]))
    for payments_router in (sdk_payments.router, payment_routes.router, sdk_checkout.router, link_routes.router,
                            exchange_routes.router):
        app.include_router(payments_router)
    app.include_router(health.router)
    for accounts_router in (auth.router, merchants.router, branches.router, api_keys.router, users.router,
                            admin.router, admin.legacy):
        app.include_router(accounts_router)
    for webhooks_router in (webhook_routes.router, sdk_webhooks.router, notification_routes.router):
        app.include_router(webhooks_router)
    from pathlib import Path

    from fastapi.staticfiles import StaticFiles

    app.mount("/static", StaticFiles(directory=str(Path(__file__).resolve().parent / "static")), name="static")
    for money_router in (settlement_routes.router, settlement_routes.admin_router, treasury_routes.router):
        app.include_router(money_router)
    return app
