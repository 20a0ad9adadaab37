"""E-mails are requested through the outbox (``email.requested``); the notifications
domain renders and sends them. Templates and their context keys: /work/notes/accounts-api.md."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from node.bus import announce

EMAIL_REQUESTED = "email.requested"

Template = Literal[
    "merchant.welcome", "email.verification", "password.reset", "login.new_device", "kyc.submitted",
    "kyc.admin_review_needed", "kyc.approved", "kyc.rejected", "merchant.frozen", "merchant.unfrozen",
    "merchant.terminated", "director.verification", "director.verified", "admin.invite", "user.invite",
]


async def request_email(
    session: AsyncSession, template: Template, to: str, *, merchant_id: uuid.UUID | None,
    context: dict[str, Any],
) -> None:
    await announce(session, EMAIL_REQUESTED, {
        "template": template, "to": to, "merchantId": str(merchant_id) if merchant_id else None,
        "context": context,
    }, key=to)
