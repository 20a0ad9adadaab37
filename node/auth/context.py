"""Who asked, from where: passed from routes to services for the audit log."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestMeta:
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def system(cls) -> RequestMeta:
        return cls()
