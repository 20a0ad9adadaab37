"""Payments: creation (rate lock, fees, signed intent, deposit address), states from the chain,
hosted checkout data, payment links, refunds, risk scoring."""
