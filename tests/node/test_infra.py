"""Embedded servers fail in one line that says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.infra.anvil import anvil_binary
from node.infra.process import InfraError, ManagedProcess


class TestStartupFailures:
    def test_a_missing_npm_binary_says_to_install(self, tmp_path: Path) -> None:
        with pytest.raises(InfraError, match=r"anvil not found at .* run `make install`"):
            anvil_binary(tmp_path)

    def test_a_missing_server_binary_says_to_install(self, tmp_path: Path) -> None:
        process = ManagedProcess("redis", [str(tmp_path / "redis-server")], tmp_path / "log")
        with pytest.raises(InfraError, match=r"redis: .* not found; run `make install`"):
            process.start()

    def test_a_server_that_dies_at_start_points_at_its_log(self, tmp_path: Path) -> None:
        process = ManagedProcess("false", ["/bin/sh", "-c", "echo cannot bind >&2; exit 3"], tmp_path / "f.log")
        process.start()
        with pytest.raises(InfraError, match=r"false exited during start-up; see its log at .*f\.log: cannot bind"):
            process.wait_ready(lambda: False, timeout=5)
