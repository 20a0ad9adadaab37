"""The node's one settings object.

Read from the environment (prefix ``OPENPAY_``; the usual ``DATABASE_URL``,
``REDIS_URL``, ``NATS_URL``, ``RPC_URL``, ``S3_URL`` too) and from ``.env``.
Passed or injected everywhere; nothing else reads ``os.environ``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# anvil's first mnemonic accounts; used only on the embedded dev chain
DEV_DEPLOYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEV_OPERATOR_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


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

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.production

    def with_urls(self, **urls: str | None) -> Settings:
        """A copy with the given infrastructure URLs filled in (used once servers started)."""
        return self.model_validate({**self.model_dump(), **{k: v for k, v in urls.items() if v}})
