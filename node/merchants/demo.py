"""The demo merchant and admin that `openpay dev` seeds."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.admin import accounts as admin_accounts
from node.admin.models import AdminUser
from node.auth.passwords import hash_password
from node.config import Settings
from node.merchants import api_keys, service
from node.merchants import repository as repo
from node.merchants.models import ApiKey

DEMO_KEY_NAME = "demo (openpay dev)"


@dataclass(frozen=True)
class DemoAccounts:
    merchant_id: str
    merchant_email: str
    merchant_password: str
    api_key: str              # "<keyId>.<secret>", a TEST key: what the SDKs take
    admin_email: str
    admin_password: str


def _password() -> str:
    # meets the policy (upper, digit) whatever the random part is
    return "Demo-" + secrets.token_urlsafe(9) + "7Q"


async def seed_demo(session: AsyncSession, settings: Settings) -> DemoAccounts:
    """Idempotent: creates the demo merchant (KYC APPROVED) and a SUPER_ADMIN once; on every run
    sets fresh passwords and replaces the demo TEST key (a key's secret cannot be read back), so
    the printed credentials always work. The admin enrols TOTP at first login (2FA is mandatory)."""
    merchant_password, admin_password = _password(), _password()
    user = await repo.user_by_email(session, settings.demo_merchant_email)
    if user is None:
        merchant, user = await service.create_merchant(
            session, settings, business_name="Demo Tea House", email=settings.demo_merchant_email,
            password=merchant_password, name="Demo Owner", phone="+94110000000", kyc_status="APPROVED",
            email_verified=True, actor_type="SYSTEM", send_emails=False)
        merchant_id = merchant.id
    else:
        merchant_id = user.merchant_id
        user.password_hash = hash_password(merchant_password)
        await session.execute(update(ApiKey).where(
            ApiKey.merchant_id == merchant_id, ApiKey.name == DEMO_KEY_NAME, ApiKey.revoked_at.is_(None),
        ).values(revoked_at=datetime.now(UTC), revoked_reason="replaced by openpay dev"))
    key = await api_keys.create_key(session, settings, merchant_id, mode="test", name=DEMO_KEY_NAME,
                                    actor_type="SYSTEM")
    admin = (await session.execute(select(AdminUser).where(AdminUser.email == settings.demo_admin_email))
             ).scalar_one_or_none()
    if admin is None:
        await admin_accounts.create_admin(session, email=settings.demo_admin_email, name="Demo admin",
                                          role="SUPER_ADMIN", password=admin_password, must_change_password=False)
    else:
        admin.password_hash = hash_password(admin_password)
        admin.is_active = True
    await session.flush()
    return DemoAccounts(str(merchant_id), settings.demo_merchant_email, merchant_password, key.sdk_credential,
                        settings.demo_admin_email, admin_password)
