"""Rates, oracle posting, and the treasury with its ccxt exchange adapters."""
