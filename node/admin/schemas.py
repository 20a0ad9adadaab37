"""Shapes of the admin API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, EmailStr, Field

from node.merchants.schemas import In, MerchantOut, Out


class AdminLoginOut(Out):
    """Always a second step: `twoFactorSetupRequired` (enrol first) or `twoFactorRequired`."""

    two_factor_required: bool
    two_factor_setup_required: bool
    challenge_token: str


class ChallengeIn(In):
    challenge_token: str = Field(min_length=1, max_length=2000)


class ChallengeCodeIn(In):
    challenge_token: str = Field(min_length=1, max_length=2000)
    code: str = Field(min_length=1, max_length=10)


class AdminOut(Out):
    id: uuid.UUID
    email: str
    name: str
    role: str
    is_active: bool
    must_change_password: bool
    two_factor_enabled: bool = Field(default=False, validation_alias="totp_enabled")
    last_login_at: datetime | None = None
    created_at: datetime


class AdminSessionOut(Out):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type
    admin: AdminOut
    must_change_password: bool
    recovery_codes: list[str] | None = None


class AdminMeOut(Out):
    admin: AdminOut
    permissions: list[str]


class InviteAdminIn(In):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "email": "ops@openpay.lk", "name": "Ops", "role": "VIEWER"}]})
    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    role: Literal["SUPER_ADMIN", "ADMIN", "VIEWER"]


class UpdateAdminIn(In):
    role: Literal["SUPER_ADMIN", "ADMIN", "VIEWER"] | None = None
    is_active: bool | None = None


class RoleOut(Out):
    role: str
    permissions: list[str]


class ReasonIn(In):
    reason: str = Field(min_length=1, max_length=2000)
    notes: str | None = Field(default=None, max_length=5000)


class OptionalReasonIn(In):
    reason: str | None = Field(default=None, max_length=2000)


class ApproveIn(In):
    model_config = ConfigDict(json_schema_extra={"examples": [{"force": False}, {
        "force": True, "forceReason": "directors verified in person on 2026-11-20"}]})
    force: bool = False
    force_reason: str | None = Field(default=None, max_length=2000)
    notes: str | None = Field(default=None, max_length=5000)


class AdminMerchantOut(MerchantOut):
    kyc_review_notes: str | None = None
    tenant_id: uuid.UUID | None = None


class SettingIn(In):
    value: Any


class SettingChangeOut(Out):
    id: int
    key: str
    old_value: Any = None
    new_value: Any = None
    changed_by: uuid.UUID | None = None
    changed_at: datetime


class LegalDocumentIn(In):
    kind: Literal["terms_and_conditions", "sign_agreement", "privacy_policy"]
    title: str = Field(min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=200_000)


class LegalDocumentAdminOut(Out):
    id: uuid.UUID
    kind: str
    version: int
    title: str
    content: str
    is_active: bool
    created_at: datetime


class AuditVerifyOut(Out):
    ok: bool
    rows: int
    bad_row_id: int | None = None
    reason: str | None = None


class AcceptAdminInviteIn(In):
    token: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=128)


