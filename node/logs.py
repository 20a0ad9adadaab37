"""Structured logs (structlog): JSON lines in production, readable in a terminal."""

from __future__ import annotations

import logging
import sys

import structlog

from node.config import Settings


def configure_logging(settings: Settings, *, role: str = "node") -> None:
    level = logging.getLevelName(settings.log_level.upper())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if settings.log_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(role=role)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    for noisy in ("uvicorn.access", "httpx", "nats", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
