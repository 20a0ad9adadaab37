"""`openpay dev` as a person runs it: it prints the URLs, becomes ready, stops
cleanly on Ctrl-C, keeps its data for the next run, and fails in one clear line."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from node.infra.anvil import rpc_call
from node.infra.process import free_port

pytestmark = pytest.mark.slow


def _start(data_dir: Path, api_port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OPENPAY_") and k not in ("DATABASE_URL", "REDIS_URL", "NATS_URL", "RPC_URL")}
    env.update({"OPENPAY_DATA_DIR": str(data_dir), "OPENPAY_API_PORT": str(api_port),
                "COLUMNS": "200", "OPENPAY_DEV_BLOCK_TIME": "1"})
    return subprocess.Popen([sys.executable, "-m", "node.cli", "dev"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float = 120) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} never printed; output:\n{''.join(seen)}")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=90)
    return out


def _field(output: str, name: str) -> str:
    match = re.search(rf"{name}\s+(\S+)", output)
    assert match, f"{name} not printed"
    return match.group(1)


class TestDevNode:
    def test_runs_stops_cleanly_and_keeps_data(self, tmp_path: Path) -> None:
        api_port = free_port()
        first = _start(tmp_path, api_port)
        output = _read_until(first, "enrol 2FA at first login")
        for label in ("API", "API docs", "Checkout", "Chain RPC", "Database"):
            assert re.search(rf"{label}\s+\S+", output), f"{label} URL not printed"
        assert httpx.get(f"http://127.0.0.1:{api_port}/readyz").status_code == 200
        children = psutil.Process(first.pid).children(recursive=True)
        assert len(children) >= 8  # postgres, redis, nats, anvil, api, indexer, worker, scheduler
        assert re.search(r"Demo API key\s+ak_test_[0-9a-f]{32}\.sk_test_[0-9a-f]{64}\s", output)
        deployment = json.loads((tmp_path / "deployments" / "31337.json").read_text())

        database = _field(output, "Database")
        rpc = _field(output, "Chain RPC")
        subprocess.run(
            [*_psql(), database, "-c", "INSERT INTO bus.outbox (message_id, type, payload) "
             "VALUES ('00000000-0000-0000-0000-00000000d0d0', 'dev.kept', '{}')"], check=True)
        rpc_call(rpc, "evm_mine")
        block = int(rpc_call(rpc, "eth_blockNumber"), 16)

        out = _stop(first)
        assert first.returncode == 0, out
        assert "Traceback" not in out
        time.sleep(0.5)
        survivors = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert survivors == [], f"processes left behind: {survivors}"

        second = _start(tmp_path, api_port)
        try:
            output = _read_until(second, "enrol 2FA at first login")
            kept = subprocess.run(
                [*_psql(), _field(output, "Database"), "-tAc",
                 "SELECT type FROM bus.outbox WHERE message_id = '00000000-0000-0000-0000-00000000d0d0'"],
                capture_output=True, text=True, check=True).stdout.strip()
            assert kept == "dev.kept"
            assert int(rpc_call(_field(output, "Chain RPC"), "eth_blockNumber"), 16) >= block
            # the chain kept its contracts: nothing was deployed again
            assert json.loads((tmp_path / "deployments" / "31337.json").read_text()) == deployment
        finally:
            _stop(second)

    def test_a_taken_port_is_one_clear_line(self, tmp_path: Path) -> None:
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            process = _start(tmp_path, holder.getsockname()[1])
            out, _ = process.communicate(timeout=60)
        assert process.returncode == 1
        assert "Traceback" not in out
        assert re.search(r"error: api: port 127\.0\.0\.1:\d+ is already in use", out)

    def test_a_corrupt_database_dir_is_one_clear_line(self, tmp_path: Path) -> None:
        pgdata = tmp_path / "postgres" / "pgdata"
        pgdata.mkdir(parents=True)
        (pgdata / "garbage").write_text("not a cluster")
        process = _start(tmp_path, free_port())
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 1
        assert "Traceback" not in out
        assert "holds files but no cluster" in out and "delete it" in out


def _psql() -> list[str]:
    import importlib.util

    spec = importlib.util.find_spec("pgserver")
    assert spec and spec.origin
    return [str(Path(spec.origin).parent / "pginstall" / "bin" / "psql")]
