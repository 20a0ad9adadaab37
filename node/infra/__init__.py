"""Embedded servers for `openpay dev` and the tests: real PostgreSQL, Redis,
NATS JetStream and anvil started from packages on free loopback ports."""
