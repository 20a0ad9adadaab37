"""Access JWTs and opaque one-time tokens.

Access tokens are HS256 JWTs with an audience per kind of caller
(``openpay:merchant``, ``openpay:admin``, and the short ``...:challenge`` tokens of
the 2FA login step), so a merchant token is refused on admin routes and a refresh
or challenge token is never accepted as an access token (original defect 4).
Refresh, reset, invite and verification tokens are opaque random strings stored
only as SHA-256 hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any, Literal

import jwt

from node.config import Settings
from node.errors import Unauthorized

Audience = Literal["openpay:merchant", "openpay:admin", "openpay:merchant:challenge",
                   "openpay:admin:challenge", "openpay:admin:password-change"]
MERCHANT_AUDIENCE: Audience = "openpay:merchant"
ADMIN_AUDIENCE: Audience = "openpay:admin"


class InvalidToken(Unauthorized):
    code = "UNAUTHORIZED"


def _secret(settings: Settings) -> str:
    secret = settings.jwt_secret.get_secret_value()
    if settings.is_production and secret.startswith("dev-only-"):
        raise RuntimeError("OPENPAY_JWT_SECRET must be set in production")
    return secret


def issue_jwt(settings: Settings, *, audience: Audience, subject: uuid.UUID, ttl_s: int,
              claims: dict[str, Any] | None = None) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": settings.jwt_issuer, "aud": audience, "sub": str(subject), "iat": now, "nbf": now,
        "exp": now + ttl_s, "jti": uuid.uuid4().hex, **(claims or {}),
    }
    return jwt.encode(payload, _secret(settings), algorithm="HS256")


def decode_jwt(settings: Settings, token: str, *, audience: Audience) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token, _secret(settings), algorithms=["HS256"], audience=audience,
            issuer=settings.jwt_issuer, options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.PyJWTError:
        raise InvalidToken("invalid token") from None
    return claims


def subject_of(claims: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(claims["sub"]))
    except (KeyError, ValueError):
        raise InvalidToken("invalid token") from None


def new_opaque_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
