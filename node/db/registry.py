"""Imports every domain's models so ``metadata`` knows all tables (for Alembic)."""

