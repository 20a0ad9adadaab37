"""What any client sees of the app's skeleton: one error shape, request ids, health."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import text
from starlette.exceptions import HTTPException

from api.app import create_app
from api.deps import Session
from node.auth.hmac_signing import MISSING_HEADERS
from node.config import Settings
from node.resources import Resources


class TestErrorShape:
    async def test_unknown_route_is_json_404(self, client: httpx.AsyncClient) -> None:
        reply = await client.get("/v1/no-such-thing")
        assert reply.status_code == 404
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.json() == {"error": {"code": "NOT_FOUND", "message": "route not found"}}

    async def test_wrong_method_is_json_405(self, client: httpx.AsyncClient) -> None:
        reply = await client.delete("/healthz")
        assert reply.status_code == 405
        assert reply.json()["error"]["code"] == "METHOD_NOT_ALLOWED"

    async def test_malformed_json_is_400_invalid_json(self, settings: Settings) -> None:
        app = _app_with_echo_route(settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            reply = await http.post("/echo", content=b'{"amount": ', headers={"content-type": "application/json"})
            assert reply.status_code == 400
            assert reply.json() == {"error": {"code": "INVALID_JSON", "message": "malformed request body"}}

            wrong_type = await http.post("/echo", json={"amount": "not a number"})
            assert wrong_type.status_code == 400
            assert wrong_type.json()["error"]["code"] == "VALIDATION_ERROR"
            assert "amount" in wrong_type.json()["error"]["message"]

    async def test_an_unexpected_failure_is_json_500_without_details(self, settings: Settings) -> None:
        app = _app_with_echo_route(settings)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            reply = await http.get("/boom")
        assert reply.status_code == 500
        assert reply.json() == {"error": {"code": "INTERNAL_ERROR", "message": "internal error"}}


class TestTransactions:
    async def test_a_failed_commit_is_an_error_to_the_client_not_a_success(
        self, settings: Settings, resources: Resources,
    ) -> None:
        """The request's transaction commits before the response leaves: a commit that fails
        (here a deferred constraint, checked only at COMMIT) can never be reported as done."""
        async with resources.db.unit_of_work() as session:
            await session.execute(text("CREATE TABLE IF NOT EXISTS public.commit_probe (id int)"))
            await session.execute(text("""
                CREATE OR REPLACE FUNCTION public.refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'refused at commit'; END $$"""))
            await session.execute(text("DROP TRIGGER IF EXISTS refuse ON public.commit_probe"))
            await session.execute(text("""
                CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON public.commit_probe
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.refuse_at_commit()"""))
        app = create_app(settings, resources)
        router = APIRouter()

        @router.post("/probe", status_code=201)
        async def probe(session: Session) -> dict[str, bool]:
            await session.execute(text("INSERT INTO public.commit_probe VALUES (1)"))
            return {"saved": True}

        app.include_router(router)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            reply = await http.post("/probe")
        assert reply.status_code == 500
        assert reply.json()["error"]["code"] == "INTERNAL_ERROR"


class TestRequestId:
    async def test_every_response_carries_a_request_id(self, client: httpx.AsyncClient) -> None:
        ok = await client.get("/healthz")
        missing = await client.get("/nowhere")
        assert len(ok.headers["x-request-id"]) == 32
        assert missing.headers["x-request-id"] != ok.headers["x-request-id"]

    async def test_a_callers_request_id_is_kept(self, client: httpx.AsyncClient) -> None:
        reply = await client.get("/healthz", headers={"X-Request-ID": "trace-abc-123"})
        assert reply.headers["x-request-id"] == "trace-abc-123"


class TestFastLane:
    """POST /v1/sdk/payments skips the framework's layers; what they give a client it gives too."""

    async def test_an_error_has_the_node_shape_a_request_id_and_a_count(self, client: httpx.AsyncClient) -> None:
        reply = await client.post("/v1/sdk/payments", content=b"{}", headers={"X-Request-ID": "lane-1"})
        assert reply.status_code == 401
        assert reply.json() == {"error": {"code": "UNAUTHORIZED", "message": MISSING_HEADERS}}
        assert reply.headers["x-request-id"] == "lane-1"
        assert reply.headers["content-type"] == "application/json"
        metrics = (await client.get("/metrics")).text
        assert 'openpay_http_requests_total{method="POST",route="/v1/sdk/payments",status="401"}' in metrics

    async def test_a_browsers_request_gets_cors_headers_and_the_same_answer(self, client: httpx.AsyncClient) -> None:
        plain = await client.post("/v1/sdk/payments", content=b"{}")
        browser = await client.post("/v1/sdk/payments", content=b"{}", headers={"Origin": "https://shop.example"})
        assert browser.status_code == plain.status_code == 401
        assert browser.json() == plain.json()
        assert browser.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-origin" not in plain.headers
        assert len(browser.headers["x-request-id"]) == 32

    async def test_an_http_exception_keeps_its_status_and_headers(self, settings: Settings,
                                                                  resources: Resources) -> None:
        app = create_app(settings, resources)

        async def too_large(request: Request) -> Response:
            raise HTTPException(413, "request body too large", headers={"Connection": "close"})

        app.fast_lane.add("POST", "/too-large", too_large)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            reply = await http.post("/too-large")
        assert reply.status_code == 413 and reply.headers["connection"] == "close"
        assert reply.json() == {"error": {"code": "PAYLOAD_TOO_LARGE", "message": "request body too large"}}

    async def test_an_unexpected_failure_is_json_500_and_logged(self, settings: Settings, resources: Resources,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
        app = create_app(settings, resources)

        async def boom(request: Request) -> Response:
            raise RuntimeError("secret internals")

        app.fast_lane.add("POST", "/boom", boom)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            reply = await http.post("/boom")
        assert reply.status_code == 500
        assert reply.json() == {"error": {"code": "INTERNAL_ERROR", "message": "internal error"}}
        assert "secret internals" not in reply.text and len(reply.headers["x-request-id"]) == 32
        assert "secret internals" in capsys.readouterr().out  # the traceback is the operator's


class TestHealth:
    async def test_healthz(self, client: httpx.AsyncClient) -> None:
        reply = await client.get("/healthz")
        assert reply.status_code == 200 and reply.json() == {"status": "ok"}

    async def test_readyz_checks_every_dependency(self, client: httpx.AsyncClient) -> None:
        reply = await client.get("/readyz")
        assert reply.status_code == 200
        assert reply.json()["checks"] == {"database": "ok", "redis": "ok", "nats": "ok", "rpc": "ok"}

    async def test_readyz_is_503_when_the_chain_is_unreachable(self, settings: Settings) -> None:
        from node.infra.process import free_port
        from node.resources import Resources

        broken = settings.model_copy(update={"rpc_url": f"http://127.0.0.1:{free_port()}"})
        resources = await Resources.open(broken, name="readyz-test")
        try:
            transport = httpx.ASGITransport(app=create_app(broken, resources))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                reply = await http.get("/readyz")
        finally:
            await resources.close()
        assert reply.status_code == 503
        assert reply.json()["checks"]["database"] == "ok"
        assert reply.json()["checks"]["rpc"] != "ok"

    async def test_metrics_are_prometheus_text(self, client: httpx.AsyncClient) -> None:
        await client.get("/healthz")
        reply = await client.get("/metrics")
        assert reply.status_code == 200
        assert 'openpay_http_requests_total{method="GET",route="/healthz",status="200"}' in reply.text


class _Echo(BaseModel):
    amount: int


def _app_with_echo_route(settings: Settings):  # type: ignore[no-untyped-def]
    app = create_app(settings)
    router = APIRouter()

    @router.post("/echo")
    async def echo(body: _Echo) -> dict[str, int]:
        return {"amount": body.amount}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.include_router(router)
    return app
