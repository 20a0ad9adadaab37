"""Errors the merchants domain raises (rendered by api/errors.py)."""

from __future__ import annotations

from node.errors import Conflict, Forbidden, NodeError, NotFound, Unauthorized, ValidationFailed


class MerchantNotFound(NotFound):
    pass


class EmailTaken(Conflict):
    code = "EMAIL_TAKEN"


class MerchantInactive(Forbidden):
    code = "MERCHANT_INACTIVE"


class InvalidCredentials(Unauthorized):
    code = "INVALID_CREDENTIALS"


class InvalidTransition(NodeError):
    code = "INVALID_TRANSITION"
    status = 409


class DirectorsNotVerified(NodeError):
    code = "DIRECTORS_NOT_VERIFIED"
    status = 422


class TooManyDirectors(ValidationFailed):
    code = "TOO_MANY_DIRECTORS"


class InvalidToken(ValidationFailed):
    code = "INVALID_TOKEN"


class LiveModeNotAllowed(Forbidden):
    code = "LIVE_MODE_NOT_ALLOWED"


class InstantAccessCapReached(Forbidden):
    code = "INSTANT_ACCESS_LIMIT"
