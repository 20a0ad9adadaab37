"""The node's one settings object.

Read from the environment (prefix ``OPENPAY_``; the usual ``DATABASE_URL``,
``REDIS_URL``, ``NATS_URL``, ``RPC_URL``, ``S3_URL`` too) and from ``.env``.
Passed or injected everywhere; nothing else reads ``os.environ``.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# anvil's first mnemonic accounts; used only on the embedded dev chain
DEV_DEPLOYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_OPERATOR_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
DEV_TREASURER_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"


DEFAULT_RATE_LIMITS = {
    "login_ip": "30/60", "login_account": "10/600", "totp": "5/300", "password_ip": "10/600",
    "public_ip": "120/60", "api": "6000/60", "admin": "600/60",
    # the hosted checkout's status poll (one every 2 s per open page): several customers' phones
    # behind one NAT address must not run out
    "checkout_ip": "900/60",
}


class Environment(StrEnum):
    dev = "dev"
    test = "test"
    production = "production"


def _url_field(name: str, default: str | None = None) -> object:
    return Field(default, validation_alias=AliasChoices(f"OPENPAY_{name}", name))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OPENPAY_", env_file=".env", extra="ignore", populate_by_name=True
    )

    environment: Environment = Environment.dev
    data_dir: Path = PROJECT_ROOT / ".openpay"

    # infrastructure: a configured URL is used as is; an unset one is started embedded by `openpay dev`
    database_url: str | None = _url_field("DATABASE_URL")  # type: ignore[assignment]
    redis_url: str | None = _url_field("REDIS_URL")  # type: ignore[assignment]
    nats_url: str | None = _url_field("NATS_URL")  # type: ignore[assignment]
    rpc_url: str | None = _url_field("RPC_URL")  # type: ignore[assignment]
    s3_url: str | None = _url_field("S3_URL")  # type: ignore[assignment]
    database_pool_size: int = 10

    # API (the original gateway's port)
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    cors_origins: list[str] = ["*"]

    # metrics of the non-API roles (the API serves /metrics itself); 0 = off
    metrics_port: int = 0

    # logs
    log_level: str = "INFO"
    log_json: bool = True

    # chain
    chain_id: int = 31337
    deployments_dir: Path = PROJECT_ROOT / "deployments"
    dev_block_time: float = 1.0
    operator_key: SecretStr = SecretStr(DEV_OPERATOR_KEY)
    deployer_key: SecretStr = SecretStr(DEV_DEPLOYER_KEY)

    # indexer: finality by the node's `finalized` tag ("tag") or by a confirmation depth ("depth")
    indexer_finality: str = "depth"
    indexer_confirmations: int = 15  # BSC default; `openpay dev` uses a short depth on its 1 s blocks
    indexer_poll_interval_s: float = 0.5  # with newHeads over WebSocket a block is noticed at once anyway
    indexer_ws_url: str | None = None  # default: the first RPC URL with ws:// (anvil, geth serve both)
    indexer_initial_range: int = 10  # blocks per eth_getLogs; doubles while sparse
    indexer_max_range: int = 50_000
    indexer_target_logs: int = 10_000  # logs per fetch the range adapts to
    indexer_live_blocks: int = 100  # headers fetched per step at the tip
    indexer_start_block: int | None = None  # default: the deployment's first block
    # deposit addresses followed: open or unswept payments, and closed ones for this long after their
    # deadline (a slow exchange withdrawal arriving late is still seen, and held as `late`)
    indexer_late_deposit_window_s: float = 7 * 86_400
    deployment_file: Path | None = None  # default: <deployments_dir>/<chain_id>.json
    # test mode (`ak_test_` keys, provider TEST) pays on a test chain: the node's own chain when it is
    # one, else the chain configured here (its own RPC and deployment, indexed by the same indexer role
    # under its own chain id, so test money never mixes with live balances)
    test_rpc_url: str | None = _url_field("TEST_RPC_URL")  # type: ignore[assignment]
    test_chain_id: int | None = None
    test_deployment_file: Path | None = None  # default: <deployments_dir>/<test_chain_id>.json
    live_chain_ids: list[int] = [56]  # chains whose money is real: no test-mode payment is made on them

    # messaging: outbox relay and consumers
    events_stream: str = "EVENTS"
    events_subject_prefix: str = "events"
    deadletter_stream: str = "DEADLETTER"
    stream_duplicate_window_s: float = 600.0
    relay_batch_size: int = 500
    relay_poll_interval_s: float = 0.5
    consumer_max_deliver: int = 5
    consumer_ack_wait_s: float = 30.0
    outbox_retention_days: int = 7

    # --- accounts, auth, rate limits, KYC, admin (node/auth, node/merchants, node/admin) ---
    # HS256 secret for access JWTs; the dev default is refused in production
    jwt_secret: SecretStr = SecretStr("dev-only-jwt-secret-change-me-0123456789abcdef")
    jwt_issuer: str = "openpay"
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 7 * 24 * 3600
    admin_access_token_ttl_s: int = 15 * 60
    admin_refresh_token_ttl_s: int = 24 * 3600
    challenge_token_ttl_s: int = 5 * 60
    email_verification_ttl_s: int = 48 * 3600
    password_reset_ttl_s: int = 30 * 60
    invite_ttl_s: int = 7 * 24 * 3600
    director_link_ttl_s: int = 7 * 24 * 3600
    # encrypts secrets at rest (API keys' HMAC keys, TOTP secrets); the dev default is refused in production
    secrets_key: SecretStr = SecretStr("dev-only-secrets-key-change-me-0123456789abcdef")
    hmac_window_ms: int = 300_000
    api_key_last_used_every_s: int = 60
    totp_issuer: str = "Open Pay"
    portal_url: str = "http://127.0.0.1:8080/portal"
    admin_portal_url: str = "http://127.0.0.1:8080/admin"
    # live payments of an INSTANT_ACCESS merchant, in USDT (whole units)
    instant_access_cap_usdt: int = 5000
    # rate limits: "<requests>/<seconds>" per route group and key; see node/ratelimit.py. A configured
    # dict changes only the groups it names (the others keep their defaults, never "no limit")
    rate_limits: dict[str, str] = DEFAULT_RATE_LIMITS
    # trusted reverse proxies whose X-Forwarded-For is believed (exact client IPs); empty = none
    trusted_proxies: list[str] = []
    # document storage: local directory under data_dir unless S3_URL (s3://bucket or http(s)://host/bucket)
    storage_dir: Path | None = None
    s3_bucket: str = "kyc-documents"
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    upload_max_bytes: int = 32 * 1024 * 1024
    director_document_max_bytes: int = 10 * 1024 * 1024
    signed_link_ttl_s: int = 300
    # the first admin, created by `openpay dev` (seed) only
    demo_admin_email: str = "admin@openpay.example.com"
    demo_merchant_email: str = "demo@openpay.example.com"

    # --- webhooks (node/webhooks): signed deliveries, retries, SSRF guard ---
    # encrypts merchants' ED25519 webhook signing keys at rest; the dev default is refused in production
    webhook_keys_secret: SecretStr = SecretStr("dev-only-webhook-keys-secret-change-me-0123456789")
    webhook_timeout_s: float = 10.0
    # seconds to wait after failed attempt n (1-based); attempts = len(schedule) + 1. The original's
    # 1, 2, 4, 8 min; a longer one (up to 3 days) may be configured
    webhook_retry_schedule_s: list[float] = [60.0, 120.0, 240.0, 480.0]
    webhook_retry_jitter: float = 0.1  # +- fraction of each wait
    webhook_poll_interval_s: float = 1.0  # due retries are also found by polling, not only on wake-ups
    webhook_max_in_flight: int = 256  # per worker process
    webhook_endpoint_concurrency: int = 16  # per endpoint, per worker process
    webhook_claim_batch: int = 200
    # how long a claimed delivery is held by its worker before another may take it; None = 3 x timeout + 5 s
    webhook_lease_s: float | None = None
    webhook_response_cap_bytes: int = 64 * 1024  # read at most this much of a receiver's answer
    webhook_response_excerpt_chars: int = 512  # kept in the delivery log
    webhook_key_grace_s: float = 72 * 3600  # a rotated-out public key stays valid this long
    # test-mode endpoints may use http:// on loopback; None = allowed unless environment is production
    webhook_test_loopback: bool | None = None
    webhook_retention_days: int = 30

    # --- notifications (node/notifications): e-mail over SMTP ---
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_security: str = "none"  # none | starttls | tls (implicit TLS, usually port 465)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = 10.0
    smtp_validate_certs: bool = True
    mail_from: str = "Open Pay <no-reply@openpay.local>"
    # seconds to wait after failed send n; then the notification is FAILED for good (still resendable)
    notification_retry_schedule_s: list[float] = [30.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0]
    notification_poll_interval_s: float = 1.0

    # --- payments and exchange rates (node/payments, node/exchange rates) ---
    coingecko_url: str = "https://api.coingecko.com"
    coingecko_api_key: SecretStr | None = None  # demo/pro key header, optional
    rates_interval_s: float = 300.0  # the original fetched every 5 minutes
    rates_timeout_s: float = 10.0
    rate_max_age_s: int = 1800  # no payment is priced on an older rate: 503 RATE_STALE
    rate_seed_lkr: str = "325"  # the original's seed when no rate was ever fetched (source SEED; test mode only)
    rate_override_max_minutes: int = 24 * 60  # an admin's manual rate lasts at most this long (and by default)
    oracle_deviation: str = "0.005"  # post to the on-chain oracle when the rate moves more than this fraction
    oracle_heartbeat_s: int = 24 * 3600  # ... or when the last round is older than this
    oracle_reporter_key: SecretStr | None = None  # REPORTER_ROLE key; default: the operator key
    payment_expiry_minutes: int = 15
    payment_usdt_decimals: int = 4  # amounts due are rounded UP to this many decimals (exchanges and people type them)
    payment_cache_ttl_s: float = 2.0  # fee settings and the active rate are re-read at most this often per process
    payment_expiry_grace_s: int = 60  # a deadline passed by less than this is not expired yet (indexer lag)
    payment_max_expiry_minutes: int = 7 * 24 * 60
    sweep_batch_size: int = 50
    sweep_interval_s: float = 30.0
    expiry_interval_s: float = 15.0
    # the funded wallet `POST /test/simulate/{providerPayId}` pays from (test chains only; anvil account 9)
    test_payer_key: SecretStr = SecretStr("0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6")
    # `POST /v1/payments/{id}/callback` waits up to this long for the indexer to reach the chain's head
    # (a simulated payment is then final before the callback answers)
    callback_wait_s: float = 5.0
    # the RPC URL a customer's wallet is offered (wallet_addEthereumChain) on the public checkout page for
    # a chain other than BSC 56/97 (a public anvil or testnet node); never the node's own RPC_URL, which
    # may hold a provider key or an internal host
    public_rpc_url: str | None = None
    # fraud rules (platform-features.md section 11, node/payments/risk.py): points per rule, the score
    # capped at 100; amounts in USDT. LOW < medium_score <= MEDIUM < high_score <= HIGH < block_score <= CRITICAL
    risk_medium_score: int = 30
    risk_high_score: int = 60
    risk_block_score: int = 80  # CRITICAL: creation refused (422 RISK_BLOCKED)
    risk_hour_count: int = 5  # a customer's payments in the last hour
    risk_hour_count_high: int = 10
    risk_hour_points: int = 15
    risk_hour_points_high: int = 30
    risk_day_count: int = 20  # ... in the last 24 h
    risk_day_count_high: int = 50
    risk_day_points: int = 10
    risk_day_points_high: int = 25
    risk_average_multiple: Decimal = Decimal(3)  # the amount vs the merchant's average of its last 50
    risk_average_multiple_high: Decimal = Decimal(5)
    risk_average_points: int = 10
    risk_average_points_high: int = 25
    risk_large_amount_usdt: int = 10_000
    risk_large_amount_points: int = 20
    risk_medium_amount_usdt: int = 5_000
    risk_medium_amount_points: int = 10
    risk_daily_volume_usdt: int = 50_000  # 24 h volume with the payment (the customer's; the merchant's floor)
    risk_daily_volume_points: int = 20
    risk_new_customer_amount_usdt: int = 1_000  # a customer never seen (or no e-mail) paying more
    risk_new_customer_points: int = 15
    # the merchant's own normal: its hour (24 h) count flags at 3x (5x) its usual rate over the baseline
    # days before the last 24 h, and only from the minimum counts on; its 24 h volume above 3x its usual
    risk_merchant_multiple: Decimal = Decimal(3)
    risk_merchant_multiple_high: Decimal = Decimal(5)
    risk_merchant_hour_min: int = 30
    risk_merchant_hour_min_high: int = 50
    risk_merchant_day_min: int = 200
    risk_merchant_day_min_high: int = 500
    risk_merchant_volume_multiple: Decimal = Decimal(3)
    risk_baseline_days: int = 7
    # the merchant's counts are re-read at most this often per process (and counted forward in between),
    # its normal at most this often
    risk_stats_ttl_s: float = 5.0
    risk_baseline_ttl_s: float = 600.0

    # --- settlement, withdrawals, treasury (node/settlement, node/exchange treasury + ccxt) ---
    # TREASURER_ROLE key (settle, withdrawTreasury) and ADMIN_ROLE key (setPayoutAddress); dev defaults are
    # anvil accounts 2 and 0, refused in production (node.settlement.sender.check_keys)
    treasurer_key: SecretStr = SecretStr(DEV_TREASURER_KEY)
    gateway_admin_key: SecretStr = SecretStr(DEV_DEPLOYER_KEY)
    payout_address_cooldown_s: float = 24 * 3600.0  # a new payout address takes effect on chain after this
    tx_replace_after_s: float = 30.0  # a sent transaction not mined after this is re-sent with more gas
    tx_receipt_timeout_s: float = 600.0  # then the send is left to reconciliation (dropped -> FAILED)
    tx_sender_interval_s: float = 2.0  # how often the worker's chain sender looks for approved work
    treasury_approval_threshold_usdt: str = "10000"  # treasury withdrawals above this need a second admin
    sweep_max_gas_price_wei: int = 5 * 10**9  # no sweeps while gas costs more than this (5 gwei)
    sweep_dust_usdt: str = "1"  # deposits holding less than this are left for later (reported)
    settlement_schedule_interval_s: float = 300.0  # how often due scheduled settlements are created
    # ccxt exchanges for the treasury: {"binance": {"apiKey": ..., "secret": ..., "password": ...}}; `urls`
    # points an exchange at another API host (tests: local servers)
    exchange_credentials: dict[str, dict[str, str]] = {}
    exchange_urls: dict[str, str] = {}
    exchange_timeout_s: float = 10.0

    @model_validator(mode="after")
    def _test_chain_is_not_live(self) -> Settings:
        if self.test_chain_id is not None and (self.test_chain_id == self.chain_id
                                               or self.test_chain_id in self.live_chain_ids):
            raise ValueError(f"OPENPAY_TEST_CHAIN_ID {self.test_chain_id} is the node's own or a live chain: the test "
                             "chain must be another chain (BSC testnet 97), or unset")
        return self

    @field_validator("rate_limits")
    @classmethod
    def _over_default_limits(cls, value: dict[str, str]) -> dict[str, str]:
        return {**DEFAULT_RATE_LIMITS, **value}

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix):]
        return value

    @property
    def rpc_urls(self) -> list[str]:
        """``RPC_URL`` may list several endpoints, comma separated, for failover."""
        return [url.strip() for url in (self.rpc_url or "").split(",") if url.strip()]

    def test_chain(self) -> Settings | None:
        """These settings pointed at the separate test chain, when one is configured."""
        if self.test_chain_id is None or not self.test_rpc_url:
            return None
        return self.model_copy(update={
            "chain_id": self.test_chain_id, "rpc_url": self.test_rpc_url, "deployment_file": self.test_deployment_file,
            "indexer_start_block": None, "indexer_ws_url": None, "test_chain_id": None, "test_rpc_url": None,
            "test_deployment_file": None,
        })

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.production

    def with_urls(self, **urls: str | None) -> Settings:
        """A copy with the given infrastructure URLs filled in (used once servers started)."""
        return self.model_validate({**self.model_dump(), **{k: v for k, v in urls.items() if v}})
