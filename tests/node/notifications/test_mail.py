"""E-mail from templates over real SMTP (aiosmtpd): parts, headers, retries, preferences."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from node.bus import Consumer, Event, OutboxRelay, announce
from node.config import Settings
from node.notifications import service
from node.notifications.sending import MailSender
from node.resources import Resources
from tests.fixtures.accounts import make_merchant
from tests.fixtures.smtp import SmtpServer
from tests.node.notifications.conftest import logged, mail_settings, request, run_sender, unique_address
from tests.node.webhooks.conftest import eventually


def _parts(message: object) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}  # type: ignore[attr-defined]


class TestSending:
    async def test_a_requested_email_arrives_with_both_parts_and_headers(
        self, resources: Resources, smtp_server: SmtpServer, sender: MailSender,
    ) -> None:
        to = unique_address()
        link = f"https://portal.example/invite?token={uuid.uuid4().hex}"
        await request(resources, "user.invite", to, {
            "name": "Ruwan", "businessName": "Lanka Tea Co", "role": "MANAGER", "invitedBy": "Nimal",
            "token": "t", "acceptUrl": link, "expiresInDays": 7,
        })

        async def arrived() -> bool:
            return len(smtp_server.to(to)) == 1
        await eventually(arrived)
        [message] = smtp_server.to(to)
        assert message["Subject"] == "Join Lanka Tea Co on Open Pay"
        assert message["From"] == "Open Pay <no-reply@openpay.test>"
        assert message["X-Openpay-Template"] == "user.invite"
        [row] = await logged(resources, to)
        assert message["Message-ID"] == f"<{row.id}@openpay>"
        assert message.get_content_type() == "multipart/alternative"
        parts = _parts(message)
        assert set(parts) == {"text/plain", "text/html"}
        assert "Nimal invited you to the Open Pay account of Lanka Tea Co as MANAGER." in parts["text/plain"]
        assert link in parts["text/plain"]
        assert f'href="{link}"' in parts["text/html"]
        assert "password" not in parts["text/plain"].replace("choose your own password", "")

        async def sent() -> bool:
            return [r.status for r in await logged(resources, to)] == ["SENT"]
        await eventually(sent)

    async def test_optional_keys_may_be_missing_and_html_is_escaped(
        self, resources: Resources, smtp_server: SmtpServer, sender: MailSender,
    ) -> None:
        to = unique_address()
        await request(resources, "kyc.rejected", to, {"businessName": "<script>x</script> & Co"})

        async def arrived() -> bool:
            return len(smtp_server.to(to)) == 1
        await eventually(arrived)
        parts = _parts(smtp_server.to(to)[0])
        assert "&lt;script&gt;x&lt;/script&gt; &amp; Co" in parts["text/html"]
        assert "<script>" not in parts["text/html"]
        assert "Reason" not in parts["text/plain"]

    async def test_a_non_ascii_subject_is_encoded(
        self, resources: Resources, smtp_server: SmtpServer, sender: MailSender,
    ) -> None:
        to = unique_address()
        await request(resources, "kyc.approved", to, {"businessName": "ලංකා Tea\r\nBcc: x@evil.example"})

        async def arrived() -> bool:
            return len(smtp_server.to(to)) == 1
        await eventually(arrived)
        [message] = smtp_server.to(to)
        assert message["Subject"] == "ලංකා Tea Bcc: x@evil.example is verified"
        assert message["Bcc"] is None

    async def test_a_missing_required_key_is_logged_failed_not_sent(self, resources: Resources) -> None:
        to = unique_address()
        await request(resources, "password.reset", to, {"name": "Nimal"})
        [row] = await logged(resources, to)
        assert row.status == "FAILED" and "resetUrl" in (row.last_error or "")

    async def test_a_redelivered_request_is_logged_once(self, resources: Resources) -> None:
        to = unique_address()
        event = await request(resources, "kyc.approved", to, {"businessName": "A"})
        async with resources.db.unit_of_work() as session:
            await service.on_email_requested(session, event)
        assert len(await logged(resources, to)) == 1

    async def test_through_the_bus(self, resources: Resources, smtp_server: SmtpServer, sender: MailSender) -> None:
        to = unique_address()
        async with resources.db.unit_of_work() as session:
            await announce(session, "email.requested", {
                "template": "merchant.welcome", "to": to, "merchantId": None,
                "context": {"businessName": "Bus Shop", "name": "Owner", "portalUrl": "https://p.example"},
            }, key=to)
        await OutboxRelay(resources.db, resources.js, resources.settings).relay_once()
        consumer = Consumer(resources.db, resources.js, resources.settings, name=f"mail-{uuid.uuid4().hex[:8]}",
                            event_types=["email.requested"], handler=service.on_email_requested)
        stop = asyncio.Event()
        task = asyncio.ensure_future(consumer.run(stop))
        try:
            async def arrived() -> bool:
                return len(smtp_server.to(to)) == 1
            await eventually(arrived)
        finally:
            stop.set()
            await task
        assert smtp_server.to(to)[0]["Subject"] == "Welcome to Open Pay, Bus Shop"


class TestOutage:
    async def test_smtp_down_then_up_the_email_is_retried_and_arrives_once(self, resources: Resources) -> None:
        server = SmtpServer()
        settings = mail_settings(resources, server)  # not started: connection refused
        to = unique_address()
        await request(resources, "kyc.approved", to, {"businessName": "Retry Shop"})
        async with run_sender(resources, settings):
            async def retrying() -> bool:
                rows = await logged(resources, to)
                return rows[0].status == "RETRYING" and rows[0].attempts >= 2
            await eventually(retrying)
            assert "connect" in ((await logged(resources, to))[0].last_error or "")
            server.start()
            try:
                async def arrived() -> bool:
                    return [r.status for r in await logged(resources, to)] == ["SENT"]
                await eventually(arrived)
                await asyncio.sleep(0.3)
                assert len(server.to(to)) == 1
            finally:
                server.stop()


class TestMerchantEvents:
    async def test_a_paid_payment_is_emailed_to_the_merchant_contact(
        self, resources: Resources, smtp_server: SmtpServer, sender: MailSender,
    ) -> None:
        account = await make_merchant(resources)
        event = Event(uuid.uuid4(), "payment.paid", "p1", datetime.now(UTC), {
            "id": "p1", "merchantId": str(account.merchant_id), "paymentNo": "PAY-20261124-00aa11bb",
            "amount": "7500", "currency": "LKR", "amountUsdt": "25", "txHash": "0xfeed", "status": "PAID",
        })
        async with resources.db.unit_of_work() as session:
            await service.on_merchant_event(session, event)

        async def arrived() -> bool:
            return len(smtp_server.to(account.email)) == 1
        await eventually(arrived)
        [message] = smtp_server.to(account.email)
        assert message["Subject"] == "Payment received: 7500 LKR (PAY-20261124-00aa11bb)"
        assert "0xfeed" in _parts(message)["text/plain"]
        assert account.business_name in _parts(message)["text/plain"]

    async def test_a_merchant_who_turned_payment_mail_off_gets_none(
        self, resources: Resources, mail: Settings,
    ) -> None:
        account = await make_merchant(resources)
        async with resources.db.unit_of_work() as session:
            prefs = await service.set_preferences(session, account.merchant_id, {"payments": False})
        assert prefs == {"payments": False, "withdrawals": True, "settlements": True, "subscriptions": True}
        event = Event(uuid.uuid4(), "payment.expired", "p2", datetime.now(UTC),
                      {"id": "p2", "merchantId": str(account.merchant_id), "paymentNo": "PAY-1"})
        async with resources.db.unit_of_work() as session:
            await service.on_merchant_event(session, event)
        [row] = await logged(resources, account.email)
        assert row.status == "SKIPPED"
        # account mail is not optional
        await request(resources, "merchant.frozen", account.email, {"businessName": "X"}, account.merchant_id)
        assert [r.status for r in await logged(resources, account.email)] == ["SKIPPED", "PENDING"]
