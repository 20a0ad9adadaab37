"""Alembic, driven from code: `openpay migrate`, `openpay dev` and the tests.

Each domain owns a branch of migrations that starts at the foundation revision
(``0001``) and carries the domain's name as branch label (``branch_labels =
("payments",)``, revision ids like ``payments_0001``), since each domain keeps its
tables in its own schema. ``upgrade`` applies every branch head, so domains add
migrations without touching one another's. File names are date-prefixed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from node.config import Settings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def upgrade(settings: Settings, revision: str = "heads") -> None:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set")
    command.upgrade(alembic_config(settings.database_url), revision)


def downgrade(settings: Settings, revision: str) -> None:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set")
    command.downgrade(alembic_config(settings.database_url), revision)
