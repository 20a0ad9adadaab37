"""Notification routes: merchant log and preferences; admin templates (versions, preview) and log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx

from node.bus import Event
from node.notifications import service
from node.resources import Resources
from tests.fixtures.accounts import make_admin, make_merchant


class TestMerchant:
    async def test_preferences_and_the_merchants_own_log(self, client: httpx.AsyncClient, resources: Resources) -> None:
        account = await make_merchant(resources)
        headers = account.auth_headers
        assert (await client.get("/v1/notifications/preferences", headers=headers)).json() == {"data": {
            "payments": True, "withdrawals": True, "settlements": True, "subscriptions": True}}
        off = await client.put("/v1/notifications/preferences", headers=headers, json={"withdrawals": False})
        assert off.json()["data"]["withdrawals"] is False
        bad = await client.put("/v1/notifications/preferences", headers=headers, json={"kyc": False})
        assert bad.status_code == 400

        event = Event(uuid.uuid4(), "withdrawal.completed", "w1", datetime.now(UTC),
                      {"merchantId": str(account.merchant_id), "id": "w1", "amount": "10"})
        async with resources.db.unit_of_work() as session:
            await service.on_merchant_event(session, event)
        log = (await client.get("/v1/notifications", headers=headers)).json()
        assert [(n["template"], n["status"], n["to"]) for n in log["data"]] == [
            ("withdrawal.completed", "SKIPPED", account.email)]
        other = await make_merchant(resources)
        assert (await client.get("/v1/notifications", headers=other.auth_headers)).json()["data"] == []


class TestAdminTemplates:
    async def test_edit_preview_history_and_rollback(self, client: httpx.AsyncClient, resources: Resources) -> None:
        admin = await make_admin(resources, role="SUPER_ADMIN")
        headers = admin.auth_headers
        listed = (await client.get("/v1/admin/email-templates", headers=headers)).json()["data"]
        assert "payment.paid" in {t["name"] for t in listed}
        name = "merchant.unfrozen"
        before = (await client.get(f"/v1/admin/email-templates/{name}", headers=headers)).json()["data"]
        assert before["requiredKeys"] == ["businessName"] and "{{ businessName }}" in before["bodyText"]

        preview = await client.post(f"/v1/admin/email-templates/{name}/preview", headers=headers, json={
            "subject": "Back: {{ businessName }}", "context": {"businessName": "Tea & Co"}})
        assert preview.json()["data"]["subject"] == "Back: Tea & Co"
        assert "Tea &amp; Co" in preview.json()["data"]["bodyHtml"]

        saved = await client.put(f"/v1/admin/email-templates/{name}", headers=headers, json={
            "subject": "Active again: {{ businessName }}", "bodyText": "Hi {{ businessName }}",
            "bodyHtml": "<p>Hi {{ businessName }}</p>"})
        assert saved.status_code == 200, saved.text
        assert saved.json()["data"]["version"] == before["version"] + 1
        history = (await client.get(f"/v1/admin/email-templates/{name}", headers=headers)).json()["data"]
        assert [v["version"] for v in history["versions"]][:2] == [before["version"] + 1, before["version"]]

        back = await client.post(f"/v1/admin/email-templates/{name}/versions/{before['version']}/activate",
                                 headers=headers)
        assert back.json()["data"]["active"] is True
        current = (await client.get(f"/v1/admin/email-templates/{name}", headers=headers)).json()["data"]
        assert current["version"] == before["version"]

    async def test_bad_templates_and_names_are_clear_4xx(self, client: httpx.AsyncClient, resources: Resources) -> None:
        admin = await make_admin(resources, role="SUPER_ADMIN")
        unsafe = await client.put("/v1/admin/email-templates/kyc.approved", headers=admin.auth_headers, json={
            "subject": "x", "bodyText": "{{ ''.__class__.__mro__ }}", "bodyHtml": "<p></p>"})
        assert unsafe.status_code == 400 and unsafe.json()["error"]["code"] == "INVALID_TEMPLATE"
        broken = await client.post("/v1/admin/email-templates/kyc.approved/preview", headers=admin.auth_headers,
                                   json={"bodyHtml": "{% if %}"})
        assert broken.status_code == 400
        unknown = await client.get("/v1/admin/email-templates/no.such", headers=admin.auth_headers)
        assert unknown.status_code == 404

    async def test_every_template_route_answers_404_for_an_unknown_name(
        self, client: httpx.AsyncClient, resources: Resources,
    ) -> None:
        admin = await make_admin(resources, role="SUPER_ADMIN")
        headers = admin.auth_headers
        text = {"subject": "x", "bodyText": "y", "bodyHtml": "<p>z</p>"}
        for name in ("no.such", "..", "kyc.approved.subject"):  # the last one is a shipped file's stem
            for method, path, body in [
                ("GET", f"/v1/admin/email-templates/{name}", None),
                ("PUT", f"/v1/admin/email-templates/{name}", text),
                ("POST", f"/v1/admin/email-templates/{name}/preview", {}),
                ("POST", f"/v1/admin/email-templates/{name}/versions/1/activate", None),
                ("POST", f"/v1/admin/email-templates/{name}/reset", None),
            ]:
                reply = await client.request(method, path, headers=headers, json=body)
                assert reply.status_code == 404, f"{method} {path}: {reply.status_code} {reply.text[:200]}"
                assert reply.json()["error"]["code"] == "NOT_FOUND", f"{method} {path}: {reply.text[:200]}"

    async def test_reset_and_activate_of_a_known_template(
        self, client: httpx.AsyncClient, resources: Resources,
    ) -> None:
        admin = await make_admin(resources, role="SUPER_ADMIN")
        headers = admin.auth_headers
        name = "director.verified"
        before = (await client.get(f"/v1/admin/email-templates/{name}", headers=headers)).json()["data"]
        reset = await client.post(f"/v1/admin/email-templates/{name}/reset", headers=headers)
        assert reset.status_code == 200, reset.text
        assert reset.json()["data"]["version"] > before["version"] and reset.json()["data"]["active"] is True
        missing = await client.post(f"/v1/admin/email-templates/{name}/versions/999999/activate", headers=headers)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
        for version in ("0", "-1", str(2**31), "99999999999999999999", "one"):
            bad = await client.post(f"/v1/admin/email-templates/{name}/versions/{version}/activate", headers=headers)
            assert bad.status_code == 400, f"{version}: {bad.status_code} {bad.text[:200]}"
            assert bad.json()["error"]["code"] == "VALIDATION_ERROR"
        current = (await client.get(f"/v1/admin/email-templates/{name}", headers=headers)).json()["data"]
        assert current["version"] == reset.json()["data"]["version"]

    async def test_a_viewer_may_read_and_preview_but_not_edit(
        self, client: httpx.AsyncClient, resources: Resources,
    ) -> None:
        viewer = await make_admin(resources, role="VIEWER")
        assert (await client.get("/v1/admin/email-templates", headers=viewer.auth_headers)).status_code == 200
        preview = await client.post("/v1/admin/email-templates/kyc.approved/preview", headers=viewer.auth_headers,
                                    json={})
        assert preview.status_code == 200
        edit = await client.put("/v1/admin/email-templates/kyc.approved", headers=viewer.auth_headers, json={
            "subject": "x", "bodyText": "y", "bodyHtml": "z"})
        assert edit.status_code == 403
        assert (await client.get("/v1/admin/email-templates")).status_code == 401

    async def test_a_merchant_token_is_not_an_admin(self, client: httpx.AsyncClient, resources: Resources) -> None:
        account = await make_merchant(resources)
        answer = await client.get("/v1/admin/email-templates", headers=account.auth_headers)
        assert answer.status_code == 401


class TestAdminLog:
    async def test_the_log_filters_and_resend(self, client: httpx.AsyncClient, resources: Resources) -> None:
        admin = await make_admin(resources, role="SUPER_ADMIN")
        to = f"log-{uuid.uuid4().hex[:10]}@example.com"
        event = Event(uuid.uuid4(), "email.requested", to, datetime.now(UTC), {
            "template": "password.reset", "to": to, "merchantId": None, "context": {"name": "N"}})
        async with resources.db.unit_of_work() as session:
            await service.on_email_requested(session, event)
        rows = (await client.get(f"/v1/admin/notifications?to={to}", headers=admin.auth_headers)).json()
        assert rows["meta"]["total"] == 1
        [row] = rows["data"]
        assert row["status"] == "FAILED" and "resetUrl" in row["lastError"]
        resend = await client.post(f"/v1/admin/notifications/{row['id']}/resend", headers=admin.auth_headers)
        assert resend.status_code == 400  # still cannot render: the request lacked the link
        one = await client.get(f"/v1/admin/notifications/{row['id']}", headers=admin.auth_headers)
        assert one.json()["data"]["status"] == "FAILED"
