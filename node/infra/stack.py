"""Starts the embedded servers whose URL is not configured, and stops them in reverse."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from node.config import Settings
from node.infra.anvil import EmbeddedAnvil
from node.infra.nats import EmbeddedNats
from node.infra.postgres import EmbeddedPostgres
from node.infra.process import free_port
from node.infra.redis import EmbeddedRedis


class Server(Protocol):
    @property
    def url(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class EmbeddedStack:
    settings: Settings
    durable: bool = True
    started: list[tuple[str, Server]] = field(default_factory=list)

    def start(self, progress: Callable[[str], None] = lambda _: None) -> Settings:
        """Start what is missing; returns settings with every URL filled in."""
        data = self.settings.data_dir
        wanted: list[tuple[str, str | None, Callable[[], Server]]] = [
            ("database_url", self.settings.database_url,
             lambda: EmbeddedPostgres(data / "postgres", free_port(), durable=self.durable)),
            ("redis_url", self.settings.redis_url,
             lambda: EmbeddedRedis(data / "redis", free_port(), durable=self.durable)),
            ("nats_url", self.settings.nats_url, lambda: EmbeddedNats(data / "nats", free_port())),
            ("rpc_url", self.settings.rpc_url,
             lambda: EmbeddedAnvil(data / "anvil", free_port(), chain_id=self.settings.chain_id,
                                   block_time=self.settings.dev_block_time)),
        ]
        urls: dict[str, str] = {}
        try:
            for key, configured, make in wanted:
                if configured:
                    continue
                server = make()
                progress(f"starting {type(server).__name__.removeprefix('Embedded').lower()}")
                server.start()
                self.started.append((key, server))
                urls[key] = server.url
        except BaseException:
            self.stop()
            raise
        return self.settings.with_urls(**urls)

    def stop(self) -> None:
        while self.started:
            _, server = self.started.pop()
            server.stop()
