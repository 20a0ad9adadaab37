"""Declarative base with one naming convention for every table and constraint."""

from __future__ import annotations

from sqlalchemy import MetaData, Numeric
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# one PostgreSQL schema per domain, so each can move to its own database later
SCHEMAS = (
    "bus", "chain", "merchants", "payments", "settlement", "webhooks",
    "exchange", "subscriptions", "notifications", "admin",
)

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# token amounts in base units (18 decimals): up to uint256
TokenAmount = Numeric(78, 0)


class Base(DeclarativeBase):
    metadata = metadata
