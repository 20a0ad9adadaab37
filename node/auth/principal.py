"""Who is calling, and what each role may do.

Every merchant route declares the permission it needs (``require_permission``);
every admin route the admin permission (``require_admin_permission``). The tables
here are the whole policy, so a review reads one page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

MerchantRole = Literal["ADMIN", "MANAGER", "USER"]
AdminRole = Literal["SUPER_ADMIN", "ADMIN", "VIEWER"]
Mode = Literal["live", "test"]

MERCHANT_ROLES: tuple[MerchantRole, ...] = ("ADMIN", "MANAGER", "USER")
ADMIN_ROLES: tuple[AdminRole, ...] = ("SUPER_ADMIN", "ADMIN", "VIEWER")

# --- merchant side -------------------------------------------------------------------------------
MERCHANT_PERMISSIONS: frozenset[str] = frozenset({
    "merchant:read", "merchant:write",          # business profile, bank account, legal acceptance
    "kyc:read", "kyc:write",                    # KYC submission, directors, documents
    "users:read", "users:manage",               # team: invite, role changes, deactivation
    "branches:read", "branches:write",
    "api_keys:read", "api_keys:write",
    "payments:read", "payments:write",
    "refunds:write",
    "payment_links:read", "payment_links:write",
    "subscriptions:read", "subscriptions:write",
    "webhooks:read", "webhooks:write",
    "withdrawals:read", "withdrawals:write",
    "settlements:read",
    "audit:read",
})

_READS = frozenset(p for p in MERCHANT_PERMISSIONS if p.endswith(":read"))

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "ADMIN": MERCHANT_PERMISSIONS,
    # runs the shop day to day; cannot touch the team, keys, payouts, webhooks, KYC or the profile
    "MANAGER": (_READS - {"api_keys:read", "audit:read"}) | {
        "payments:write", "refunds:write", "payment_links:write", "subscriptions:write", "branches:write",
    },
    # a cashier: takes payments and links (for its branch when scoped to one)
    "USER": frozenset({
        "merchant:read", "branches:read", "payments:read", "payments:write",
        "payment_links:read", "payment_links:write", "subscriptions:read",
    }),
}

# what a server-to-server API key may do (never the account itself: team, keys, KYC, payouts)
API_KEY_PERMISSIONS: frozenset[str] = frozenset({
    "merchant:read", "branches:read", "payments:read", "payments:write", "refunds:write",
    "payment_links:read", "payment_links:write", "subscriptions:read", "subscriptions:write",
    "webhooks:read", "webhooks:write", "withdrawals:read", "settlements:read",
})


@dataclass(frozen=True)
class MerchantPrincipal:
    """A merchant caller: a portal user (JWT) or an API key (HMAC)."""

    merchant_id: uuid.UUID
    user_id: uuid.UUID | None
    role: MerchantRole | None          # None for API keys
    branch_id: uuid.UUID | None        # set: the caller sees only this branch's objects
    mode: Mode
    api_key_id: uuid.UUID | None
    permissions: frozenset[str] = field(default_factory=frozenset)
    # the merchant's KYC state when authenticated (live payments need INSTANT_ACCESS or APPROVED)
    kyc_status: str = "PENDING"

    @property
    def is_api_key(self) -> bool:
        return self.api_key_id is not None

    def can(self, permission: str) -> bool:
        return permission in self.permissions


# --- admin side ----------------------------------------------------------------------------------
ADMIN_PERMISSIONS: tuple[str, ...] = (
    "merchants:read", "merchants:approve", "merchants:reject", "merchants:manage",
    "withdrawals:read", "withdrawals:approve", "withdrawals:reject", "withdrawals:complete",
    "payments:read", "treasury:read", "audit:read", "subscriptions:read", "notifications:read",
    "treasury:manage", "system:manage",
)

ADMIN_ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "SUPER_ADMIN": frozenset(ADMIN_PERMISSIONS),
    "ADMIN": frozenset(p for p in ADMIN_PERMISSIONS if not p.endswith(":manage")),
    "VIEWER": frozenset(p for p in ADMIN_PERMISSIONS if p.endswith(":read")),
}


@dataclass(frozen=True)
class AdminPrincipal:
    admin_id: uuid.UUID
    email: str
    role: AdminRole
    permissions: frozenset[str] = field(default_factory=frozenset)

    def can(self, permission: str) -> bool:
        return permission in self.permissions
