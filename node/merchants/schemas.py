"""Pydantic shapes of the merchant-side API: camelCase on the wire, ``{"data": ...}`` envelopes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_serializer, field_validator
from pydantic.alias_generators import to_camel

T = TypeVar("T")

Name = Field(min_length=1, max_length=200)


class In(BaseModel):
    """Request bodies: unknown keys are refused with 400, so typos never pass silently."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL; refuse it here as a 400 rather than fail in the database
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class Data(BaseModel, Generic[T]):
    data: T


class PageMeta(Out):
    total: int
    page: int
    per_page: int


class Page(BaseModel, Generic[T]):
    data: list[T]
    meta: PageMeta


# --- accounts ------------------------------------------------------------------------------------
class RegisterIn(In):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "businessName": "Lanka Tea House", "email": "owner@lankatea.lk", "password": "Str0ngPassw0rd",
        "name": "Nimal Perera", "phone": "+94771234567"}]})

    business_name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    password: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=40)


class LoginIn(In):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "owner@lankatea.lk",
                                                               "password": "Str0ngPassw0rd"}]})
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=128)


class SecondFactorIn(In):
    challenge_token: str = Field(min_length=1, max_length=2000)
    code: str | None = Field(default=None, max_length=10)
    recovery_code: str | None = Field(default=None, max_length=20)


class RefreshIn(In):
    refresh_token: str = Field(min_length=1, max_length=200)


class ChangePasswordIn(In):
    current_password: str = Field(min_length=1, max_length=128)
    new_password: str = Field(min_length=1, max_length=128)


class EmailIn(In):
    email: str = Field(min_length=1, max_length=320)


class TokenIn(In):
    token: str = Field(min_length=1, max_length=200)


class ResetPasswordIn(In):
    token: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=128)


class AcceptInviteIn(In):
    token: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=128)
    name: str | None = Field(default=None, max_length=200)


class CodeIn(In):
    code: str = Field(min_length=1, max_length=10)


class UserOut(Out):
    id: uuid.UUID
    merchant_id: uuid.UUID
    email: str
    name: str
    phone: str | None = None
    role: str
    branch_id: uuid.UUID | None = None
    is_active: bool
    email_verified: bool = False
    two_factor_enabled: bool = Field(default=False, validation_alias="totp_enabled")
    invite_pending: bool = False
    last_login_at: datetime | None = None
    created_at: datetime

    @classmethod
    def of(cls, user: Any) -> UserOut:
        out = cls.model_validate(user)
        out.email_verified = user.email_verified_at is not None
        out.invite_pending = user.password_hash is None
        return out


class MerchantOut(Out):
    id: uuid.UUID
    business_name: str
    email: str
    phone: str | None = None
    website: str | None = None
    business_type: str | None = None
    registration_number: str | None = None
    description: str | None = None
    country: str
    currency: str
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    postal_code: str | None = None
    bank_name: str | None = None
    bank_branch: str | None = None
    bank_account_name: str | None = None
    bank_account_number: str | None = None
    payout_address: str | None = None
    kyc_status: str
    kyc_submitted_at: datetime | None = None
    kyc_reviewed_at: datetime | None = None
    kyc_rejection_reason: str | None = None
    instant_access_used_usdt: Decimal = Field(default=Decimal(0), validation_alias="instant_access_used")
    status: str
    status_reason: str | None = None
    email_verified_at: datetime | None = None
    created_at: datetime

    @field_serializer("instant_access_used_usdt")
    def _usdt(self, value: Decimal) -> str:
        # stored in base units (18 decimals); shown as a trimmed decimal string
        from node.money import format_units

        return format_units(int(value))


class TokensOut(Out):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


class SessionOut(TokensOut):
    user: UserOut
    merchant: MerchantOut


class LoginOut(Out):
    """Either tokens, or ``twoFactorRequired`` with a short-lived ``challengeToken`` for /2fa/login."""

    two_factor_required: bool = False
    challenge_token: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    expires_in: int | None = None
    token_type: str | None = None
    user: UserOut | None = None
    merchant: MerchantOut | None = None


class MeOut(Out):
    user: UserOut
    merchant: MerchantOut
    permissions: list[str]


class TotpSetupOut(Out):
    secret: str
    otpauth_uri: str
    qr_svg: str


class RecoveryCodesOut(Out):
    recovery_codes: list[str]


class OkOut(Out):
    ok: bool = True


# --- merchant profile and KYC --------------------------------------------------------------------
class MerchantUpdateIn(In):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "businessName": "Lanka Tea House (Pvt) Ltd", "phone": "+94112345678", "addressLine1": "12 Galle Road",
        "city": "Colombo", "bankName": "Commercial Bank", "bankAccountNumber": "1234567890"}]})

    business_name: str | None = Field(default=None, min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    website: str | None = Field(default=None, max_length=300)
    business_type: str | None = Field(default=None, max_length=100)
    registration_number: str | None = Field(default=None, max_length=100)
    description: str | None = Field(default=None, max_length=5000)
    address_line1: str | None = Field(default=None, max_length=200)
    address_line2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)
    bank_name: str | None = Field(default=None, max_length=200)
    bank_branch: str | None = Field(default=None, max_length=200)
    bank_account_name: str | None = Field(default=None, max_length=200)
    bank_account_number: str | None = Field(default=None, max_length=50, pattern=r"^[0-9A-Za-z -]*$")
    payout_address: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    # the original's PUT /v1/merchants/{id} {submitKyc: true}
    submit_kyc: bool = False


class KycSubmitOut(Out):
    kyc_status: str


class DirectorIn(In):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr


class DirectorOut(Out):
    id: uuid.UUID
    name: str
    email: str
    status: str
    verified_at: datetime | None = None
    link_expires_at: datetime | None = Field(default=None, validation_alias="token_expires_at")
    document_id: uuid.UUID | None = None
    created_at: datetime


class DirectorInvitationOut(Out):
    director_name: str
    business_name: str
    expires_at: datetime


class DirectorVerifyOut(Out):
    status: Literal["VERIFIED"]


class DocumentOut(Out):
    id: uuid.UUID
    category: str
    content_type: str
    size: int
    sha256: str
    original_name: str | None = None
    director_id: uuid.UUID | None = None
    created_at: datetime


class SignedLinkOut(Out):
    url: str
    expires_at: datetime


class DirectorForm(In):
    full_name: str = Field(min_length=1, max_length=200)
    date_of_birth: date
    id_number: str = Field(min_length=4, max_length=50)
    phone: str = Field(min_length=5, max_length=40)
    address: str = Field(min_length=1, max_length=300)
    consent: bool


# --- branches, users, keys -----------------------------------------------------------------------
class BranchDefaults(In):
    currency: Literal["LKR", "USDT", "USDC", "BTC", "ETH", "BNB"] | None = None
    provider: Literal["TEST", "BINANCE", "BYBIT", "KUCOIN"] | None = None
    success_url: str | None = Field(default=None, max_length=2000)
    cancel_url: str | None = Field(default=None, max_length=2000)


class BranchIn(In):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "Kandy", "description": "Hill country shop", "address": "5 Temple Rd", "city": "Kandy",
        "defaults": {"currency": "LKR"}}]})

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    address: str | None = Field(default=None, max_length=300)
    city: str | None = Field(default=None, max_length=100)
    defaults: BranchDefaults | None = None


class BranchUpdateIn(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    address: str | None = Field(default=None, max_length=300)
    city: str | None = Field(default=None, max_length=100)
    defaults: BranchDefaults | None = None


class BranchOut(Out):
    id: uuid.UUID
    name: str
    description: str | None = None
    address: str | None = None
    city: str | None = None
    defaults: dict[str, Any]
    created_at: datetime


class InviteUserIn(In):
    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    role: Literal["ADMIN", "MANAGER", "USER"]
    branch_id: uuid.UUID | None = None


class UpdateUserIn(In):
    role: Literal["ADMIN", "MANAGER", "USER"] | None = None
    branch_id: uuid.UUID | None = None
    is_active: bool | None = None


class ApiKeyIn(In):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "web shop", "mode": "test"}]})

    name: str = Field(default="default", min_length=1, max_length=100)
    mode: Literal["live", "test"] = "test"
    allowed_ips: list[str] = Field(default_factory=list, max_length=50)


class RevokeIn(In):
    reason: str | None = Field(default=None, max_length=500)


class ApiKeyOut(Out):
    id: uuid.UUID
    key_id: str
    mode: str
    name: str
    secret_hint: str
    allowed_ips: list[str]
    last_used_at: datetime | None = None
    created_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: str | None = None


class ApiKeyCreatedOut(ApiKeyOut):
    """``secret`` and ``credential`` (``<keyId>.<secret>``, what the SDKs take) are shown this once."""

    secret: str
    credential: str


class AuditLogOut(Out):
    id: int
    occurred_at: datetime
    actor_type: str
    actor_id: str | None = None
    merchant_id: uuid.UUID | None = None
    action: str
    resource_type: str | None = None
    resource_id: str | None = None
    changes: dict[str, Any] | None = None
    details: dict[str, Any] | None = None
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(cls, row: Any) -> AuditLogOut:
        values = {name: getattr(row, name) for name in cls.model_fields}
        values["ip"] = str(row.ip) if row.ip is not None else None
        return cls.model_validate(values)


class LegalDocumentOut(Out):
    id: uuid.UUID
    kind: str
    version: int
    title: str
    content: str
    created_at: datetime
    accepted: bool | None = None


class AcceptLegalIn(In):
    document_id: uuid.UUID
