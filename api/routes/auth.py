"""Merchant portal authentication: register, login (+ TOTP step), refresh, logout, passwords, 2FA."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from redis.exceptions import RedisError

from api.deps import CurrentMerchant, Limiter, RequestMeta, Resources, Session, Settings, rate_limit
from node.auth import sessions
from node.auth.principal import ROLE_PERMISSIONS
from node.errors import Forbidden, Unauthorized
from node.merchants import accounts, service, team
from node.merchants import repository as repo
from node.merchants.emails import request_email
from node.merchants.models import User
from node.merchants.schemas import (
    AcceptInviteIn,
    ChangePasswordIn,
    CodeIn,
    Data,
    EmailIn,
    LoginIn,
    LoginOut,
    MeOut,
    MerchantOut,
    OkOut,
    RecoveryCodesOut,
    RefreshIn,
    RegisterIn,
    ResetPasswordIn,
    SecondFactorIn,
    SessionOut,
    TokenIn,
    TokensOut,
    TotpSetupOut,
    UserOut,
)

router = APIRouter(prefix="/v1/auth", tags=["auth"])


def _session_out(result: accounts.LoginResult) -> LoginOut:
    assert result.tokens is not None
    return LoginOut(two_factor_required=False, access_token=result.tokens.access_token,
                    refresh_token=result.tokens.refresh_token, expires_in=result.tokens.expires_in,
                    token_type="Bearer", user=UserOut.of(result.user),  # noqa: S106 - token type
                    merchant=MerchantOut.model_validate(result.merchant))


async def _portal_user(session: Session, principal: CurrentMerchant) -> User:
    if principal.user_id is None:
        raise Forbidden("this route needs a portal user, not an API key")
    user = await repo.get_user(session, principal.user_id, for_update=True)
    if user is None:
        raise Unauthorized("invalid token")
    return user


PortalUser = Annotated[User, Depends(_portal_user)]


async def _note_device(resources: Resources, session: Session, user: User, meta: RequestMeta,
                       first_login: bool) -> None:
    """E-mail the user when a login comes from a device (IP + user agent) not seen before."""
    device = hashlib.sha256(f"{meta.ip}|{meta.user_agent}".encode()).hexdigest()[:32]
    try:
        added = await resources.redis.sadd(f"devices:{user.id}", device)  # type: ignore[misc]
        await resources.redis.expire(f"devices:{user.id}", 180 * 86400)
    except RedisError:
        return
    if added and not first_login:
        await request_email(session, "login.new_device", user.email, merchant_id=user.merchant_id, context={
            "name": user.name, "ip": meta.ip, "userAgent": meta.user_agent,
            "at": user.last_login_at.isoformat() if user.last_login_at else None,
        })


@router.post("/register", status_code=201, response_model=Data[SessionOut], summary="Register a merchant",
             dependencies=[Depends(rate_limit("password_ip"))])
async def register(body: RegisterIn, session: Session, settings: Settings, meta: RequestMeta,
                   resources: Resources) -> Data[SessionOut]:
    """Creates the merchant (LK, LKR, KYC PENDING, ACTIVE) and its ADMIN user; e-mails a welcome and
    a verification link. Returns tokens, the user and the merchant."""
    merchant, user = await service.create_merchant(
        session, settings, business_name=body.business_name, email=str(body.email), password=body.password,
        name=body.name, phone=body.phone, meta=meta)
    tokens = await accounts.issue_tokens(session, settings, user)
    await _note_device(resources, session, user, meta, first_login=True)
    return Data(data=SessionOut(access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                                expires_in=tokens.expires_in, user=UserOut.of(user),
                                merchant=MerchantOut.model_validate(merchant)))


@router.post("/login", response_model=Data[LoginOut], summary="Log in (password step)",
             dependencies=[Depends(rate_limit("login_ip"))])
async def login(body: LoginIn, session: Session, settings: Settings, meta: RequestMeta, limiter: Limiter,
                resources: Resources) -> Data[LoginOut]:
    """Tokens, or with 2FA on `twoFactorRequired` + `challengeToken` for `/v1/auth/2fa/login`.
    Non-ACTIVE merchants get 403 MERCHANT_INACTIVE."""
    await limiter.check("login_account", body.email.strip().lower())
    try:
        result = await accounts.login(session, settings, body.email, body.password, meta)
    except Unauthorized:
        async with resources.db.unit_of_work() as own:
            from node.admin import audit

            await audit.record(own, action="merchant_user.login_failed", actor_type="SYSTEM", meta=meta,
                               details={"email": body.email.strip().lower()[:320]})
        raise
    if result.challenge_token:
        return Data(data=LoginOut(two_factor_required=True, challenge_token=result.challenge_token))
    out = _session_out(result)
    await _note_device(resources, session, result.user, meta, first_login=result.first_login)
    return Data(data=out)


@router.post("/2fa/login", response_model=Data[LoginOut], summary="Log in (TOTP or recovery code step)",
             dependencies=[Depends(rate_limit("login_ip"))])
async def login_second_factor(body: SecondFactorIn, session: Session, settings: Settings, meta: RequestMeta,
                              limiter: Limiter) -> Data[LoginOut]:
    await limiter.check("totp", "merchant:" + hashlib.sha256(body.challenge_token.encode()).hexdigest())
    result = await accounts.login_second_factor(session, settings, body.challenge_token, code=body.code,
                                                recovery_code=body.recovery_code, meta=meta)
    return Data(data=_session_out(result))


@router.post("/refresh", response_model=Data[TokensOut], summary="Rotate the refresh token",
             dependencies=[Depends(rate_limit("login_ip"))])
async def refresh(body: RefreshIn, session: Session, settings: Settings, meta: RequestMeta,
                  resources: Resources) -> Data[TokensOut]:
    """Returns a new pair; the presented refresh token is spent. Presenting a spent token again
    revokes every token of that login (stolen-token detection)."""
    try:
        pair, _ = await accounts.refresh(session, settings, body.refresh_token)
    except sessions.RefreshReused as reused:
        async with resources.db.unit_of_work() as own:
            await accounts.revoke_reused_family(own, reused, meta)
        raise
    return Data(data=TokensOut(access_token=pair.access_token, refresh_token=pair.refresh_token,
                               expires_in=pair.expires_in))


@router.post("/logout", response_model=Data[OkOut], summary="Revoke this login's refresh tokens")
async def logout(body: RefreshIn, session: Session, meta: RequestMeta) -> Data[OkOut]:
    await accounts.logout(session, body.refresh_token, meta)
    return Data(data=OkOut())


@router.get("/me", response_model=Data[MeOut], summary="The logged-in user, its merchant and permissions")
async def me(session: Session, principal: CurrentMerchant, user: PortalUser) -> Data[MeOut]:
    merchant = await service.get(session, principal.merchant_id)
    return Data(data=MeOut(user=UserOut.of(user), merchant=MerchantOut.model_validate(merchant),
                           permissions=sorted(ROLE_PERMISSIONS.get(user.role, frozenset()))))


@router.post("/change-password", response_model=Data[OkOut], summary="Change password (logs out other sessions)",
             dependencies=[Depends(rate_limit("password_ip"))])
async def change_password(body: ChangePasswordIn, session: Session, user: PortalUser,
                          meta: RequestMeta) -> Data[OkOut]:
    await accounts.change_password(session, user.id, body.current_password, body.new_password, meta)
    return Data(data=OkOut())


@router.post("/password-reset/request", status_code=202, response_model=Data[OkOut],
             summary="E-mail a password reset link", dependencies=[Depends(rate_limit("password_ip"))])
async def request_reset(body: EmailIn, session: Session, settings: Settings, meta: RequestMeta) -> Data[OkOut]:
    """Answers 202 whether or not the address has an account."""
    await accounts.request_password_reset(session, settings, body.email, meta)
    return Data(data=OkOut())


@router.post("/password-reset/confirm", response_model=Data[OkOut], summary="Set a new password with the token",
             dependencies=[Depends(rate_limit("password_ip"))])
async def confirm_reset(body: ResetPasswordIn, session: Session, meta: RequestMeta) -> Data[OkOut]:
    await accounts.reset_password(session, body.token, body.new_password, meta)
    return Data(data=OkOut())


@router.post("/verify-email", response_model=Data[OkOut], summary="Confirm the e-mail address",
             dependencies=[Depends(rate_limit("password_ip"))])
async def verify_email(body: TokenIn, session: Session) -> Data[OkOut]:
    await accounts.verify_email(session, body.token)
    return Data(data=OkOut())


@router.post("/verify-email/resend", status_code=202, response_model=Data[OkOut],
             summary="Send the verification e-mail again")
async def resend_verification(session: Session, settings: Settings, user: PortalUser) -> Data[OkOut]:
    if user.email_verified_at is None:
        await service.send_verification(session, settings, user)
    return Data(data=OkOut())


@router.post("/invites/accept", response_model=Data[UserOut], summary="Accept a team invitation",
             dependencies=[Depends(rate_limit("password_ip"))])
async def accept_invite(body: AcceptInviteIn, session: Session, meta: RequestMeta) -> Data[UserOut]:
    user = await team.accept_invite(session, body.token, body.password, body.name, meta)
    return Data(data=UserOut.of(user))


@router.post("/2fa/setup", response_model=Data[TotpSetupOut], summary="Start TOTP enrolment")
async def totp_setup(session: Session, settings: Settings, user: PortalUser) -> Data[TotpSetupOut]:
    enrolment = await accounts.start_totp(session, settings, user)
    return Data(data=TotpSetupOut(secret=enrolment.secret, otpauth_uri=enrolment.uri, qr_svg=enrolment.qr_svg))


@router.post("/2fa/verify", response_model=Data[RecoveryCodesOut],
             summary="Confirm TOTP with a code; returns 10 recovery codes once")
async def totp_verify(body: CodeIn, request: Request, session: Session, settings: Settings, user: PortalUser,
                      limiter: Limiter, meta: RequestMeta) -> Data[RecoveryCodesOut]:
    await limiter.check("totp", f"user:{user.id}")
    codes = await accounts.confirm_totp(session, settings, user, body.code)
    from node.admin import audit

    await audit.record(session, action="merchant_user.2fa_enabled", actor_type="MERCHANT_USER", actor_id=user.id,
                       merchant_id=user.merchant_id, resource_type="user", resource_id=user.id, meta=meta)
    return Data(data=RecoveryCodesOut(recovery_codes=codes))


@router.post("/2fa/disable", response_model=Data[OkOut], summary="Turn TOTP off (needs a current code)")
async def totp_disable(body: CodeIn, session: Session, settings: Settings, user: PortalUser, limiter: Limiter,
                       meta: RequestMeta) -> Data[OkOut]:
    await limiter.check("totp", f"user:{user.id}")
    await accounts.disable_totp(session, settings, user, body.code)
    from node.admin import audit

    await audit.record(session, action="merchant_user.2fa_disabled", actor_type="MERCHANT_USER", actor_id=user.id,
                       merchant_id=user.merchant_id, resource_type="user", resource_id=user.id, meta=meta)
    return Data(data=OkOut())
