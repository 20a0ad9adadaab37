"""anvil from the npm package `@foundry-rs/anvil` (native binary, one PID)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import httpx

from node.infra.process import InfraError, ManagedProcess, ensure_port_free

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"


def anvil_binary(root: Path = PROJECT_ROOT) -> Path:
    path = root / "contracts" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not path.exists():
        raise InfraError(f"anvil not found at {path}; run `make install` (npm install in contracts/)")
    return path


def rpc_call(url: str, method: str, params: list[object] | None = None, timeout: float = 2.0) -> Any:
    """One JSON-RPC call, synchronously (start-up, tests)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    reply = httpx.post(url, json=body, timeout=timeout).json()
    if "error" in reply:
        raise InfraError(f"anvil: {method} failed: {reply['error']}")
    return reply["result"]


class EmbeddedAnvil:
    def __init__(self, data_dir: Path | None, port: int, *, chain_id: int = 31337,
                 block_time: float | None = None, accounts: int = 10, mnemonic: str = DEFAULT_MNEMONIC):
        self.data_dir = data_dir
        self.port = port
        self.chain_id = chain_id
        self.block_time = block_time
        self.accounts = accounts
        self.mnemonic = mnemonic
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        ensure_port_free("anvil", "127.0.0.1", self.port)
        argv = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(self.port),
                "--chain-id", str(self.chain_id), "--accounts", str(self.accounts),
                "--mnemonic", self.mnemonic, "--silent"]
        if self.block_time:
            argv += ["--block-time", str(self.block_time)]
        log_dir = self.data_dir or Path(tempfile.gettempdir())
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # --state loads on start and dumps on exit (SIGTERM), so a restart keeps the chain
            argv += ["--state", str(self.data_dir / "state.json"), "--state-interval", "30"]
        self.process = ManagedProcess("anvil", argv, log_dir / f"anvil-{self.port}.log")
        self.process.start()
        self.process.wait_ready(self._ready)

    def _ready(self) -> bool:
        try:
            return bool(rpc_call(self.url, "eth_chainId", timeout=0.5) == hex(self.chain_id))
        except (httpx.HTTPError, InfraError, ValueError):
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
