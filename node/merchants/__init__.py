"""Merchants: accounts, users and roles, branches, API keys, KYC (directors, documents)."""
