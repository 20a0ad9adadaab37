"""Follows the contracts into PostgreSQL."""
