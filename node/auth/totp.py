"""TOTP second factor (RFC 6238 via pyotp) and recovery codes.

A code is accepted for the current 30 s step and one step either side; the step
it matched is stored, and only later steps are accepted afterwards, so a code
(or an earlier one) cannot be replayed within its window.
"""

from __future__ import annotations

import secrets
import time

import pyotp
import segno

from node.auth.tokens import token_hash

RECOVERY_CODES = 10
STEP_S = 30


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg_data_uri(uri: str) -> str:
    return str(segno.make(uri, error="m").svg_data_uri(scale=4))


def matching_step(secret: str, code: str, *, last_step: int | None, now: float | None = None) -> int | None:
    """The time step ``code`` is valid for (now +-1 step) and newer than ``last_step``, else None."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if now is None else now) // STEP_S)
    for step in (current - 1, current, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes like ``a1b2c-3d4e5``, shown once; store ``recovery_code_hash`` of each."""
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def recovery_code_hash(code: str) -> str:
    return token_hash("recovery:" + code.strip().lower().replace(" ", ""))
