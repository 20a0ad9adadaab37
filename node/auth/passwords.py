"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from node.errors import ValidationFailed

# the argon2-cffi defaults (RFC 9106 low-memory profile)
_hasher = PasswordHasher()
# verifying against this when the account does not exist keeps timing equal
_DUMMY_HASH = _hasher.hash("not-a-real-password-0")

MIN_LENGTH = 8
MAX_LENGTH = 128


class WeakPassword(ValidationFailed):
    code = "WEAK_PASSWORD"


def check_policy(password: str) -> None:
    """The original's rule: at least 8 characters with one uppercase letter and one digit."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise WeakPassword(f"password must be {MIN_LENGTH} to {MAX_LENGTH} characters")
    if not re.search(r"[A-Z]", password) or not re.search(r"[0-9]", password):
        raise WeakPassword("password needs at least one uppercase letter and one digit")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False
