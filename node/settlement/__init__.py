"""Balances, withdrawals, treasury and LKR settlement: every balance a projection of indexed events."""
