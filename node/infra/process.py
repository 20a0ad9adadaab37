"""A child server process we start, watch and stop cleanly."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class InfraError(Exception):
    """A startup failure an operator can fix; ``str()`` is one line saying how."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def ensure_port_free(name: str, host: str, port: int) -> None:
    if port_is_open(host, port):
        raise InfraError(
            f"{name}: port {host}:{port} is already in use; stop whatever holds it "
            f"or leave the port unset so a free one is chosen"
        )


def _die_with_parent(sig: int) -> Callable[[], None]:
    """Linux PR_SET_PDEATHSIG: the child gets ``sig`` if we die, even by SIGKILL."""

    def arm() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, sig, 0, 0, 0)

    return arm


@dataclass
class ManagedProcess:
    """A server child in its own process group, so a signal to us never races it."""

    name: str
    argv: Sequence[str]
    log_path: Path | None  # None: the child writes to our terminal
    env: dict[str, str] | None = None
    user: str | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 20.0
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        if not Path(self.argv[0]).exists():
            raise InfraError(f"{self.name}: {self.argv[0]} not found; run `make install` first")
        log: IO[bytes] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.popen = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT if log is not None else None,
                stdin=subprocess.DEVNULL,
                env=self.env,
                user=self.user,
                start_new_session=True,
                preexec_fn=_die_with_parent(self.stop_signal),
            )
        finally:
            if log is not None:
                log.close()

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise InfraError(
                    f"{self.name} exited during start-up; see its log at {self.log_path}: "
                    f"{self.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise InfraError(f"{self.name} was not ready after {timeout:.0f}s; see {self.log_path}")

    def log_tail(self, lines: int = 3) -> str:
        if self.log_path is None:
            return ""
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, self.stop_signal)
        try:
            self.popen.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
