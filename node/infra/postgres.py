"""PostgreSQL 16 from the `pgserver` wheel's binaries, run as our own child."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from node.infra.process import InfraError, ManagedProcess, ensure_port_free

SERVICE_USER = "pgserver"  # postgres refuses to run as root


def _bin_dir() -> Path:
    # only the wheel's binaries are used; importing pgserver itself starts its own machinery
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise InfraError("pgserver is not installed; run `make install`")
    return Path(spec.origin).parent / "pginstall" / "bin"


def _open_prefix(path: Path) -> None:
    """Let the service user traverse every folder above ``path``."""
    for parent in path.resolve().parents:
        parent.chmod(parent.stat().st_mode | 0o055)


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/false", SERVICE_USER], check=True, capture_output=True)
    bins = _bin_dir()
    _open_prefix(bins)
    for root, _dirs, files in os.walk(bins.parent):
        os.chmod(root, os.stat(root).st_mode | 0o055)  # noqa: S103 - binaries only, read+exec
        for name in files:
            file = os.path.join(root, name)
            os.chmod(file, os.stat(file).st_mode | 0o055)  # noqa: S103 - binaries only, read+exec
    return SERVICE_USER


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    _open_prefix(path)
    for root, dirs, files in os.walk(path):
        shutil.chown(root, user, user)
        for name in dirs + files:
            shutil.chown(os.path.join(root, name), user, user)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int, *, database: str = "openpay", durable: bool = True):
        self.data_dir = data_dir
        self.port = port
        self.database = database
        self.durable = durable
        self.user = _run_as()
        self.pgdata = data_dir / "pgdata"
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _tool(self, name: str) -> str:
        return str(_bin_dir() / name)

    def _init_cluster(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise InfraError(
                f"postgres: {self.pgdata} holds files but no cluster (PG_VERSION missing); "
                f"move it aside or delete it to start with an empty database"
            )
        self.pgdata.mkdir(parents=True, exist_ok=True)
        _chown_tree(self.data_dir, self.user)
        result = subprocess.run(
            [self._tool("initdb"), "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-instructions"],
            capture_output=True, text=True, user=self.user,
        )
        if result.returncode != 0:
            raise InfraError(f"postgres: initdb failed in {self.pgdata}: {result.stderr.strip()[-300:]}")

    def start(self) -> None:
        ensure_port_free("postgres", "127.0.0.1", self.port)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._init_cluster()
        _chown_tree(self.data_dir, self.user)
        sockets = self.data_dir / "sock"
        sockets.mkdir(exist_ok=True)
        _chown_tree(sockets, self.user)
        argv = [self._tool("postgres"), "-D", str(self.pgdata), "-p", str(self.port),
                "-h", "127.0.0.1", "-k", str(sockets), "-c", "max_connections=200"]
        if not self.durable:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self.process = ManagedProcess(
            "postgres", argv, self.data_dir / "postgres.log", user=self.user,
            # SIGINT is postgres' "fast shutdown": clients are disconnected, data flushed
            stop_signal=2, stop_timeout=60,
        )
        self.process.start()
        self.process.wait_ready(self._ready, timeout=60)
        self._ensure_database()

    def _ready(self) -> bool:
        return subprocess.run(
            [self._tool("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q"],
            capture_output=True,
        ).returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [self._tool("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-tAc", sql],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise InfraError(f"postgres: {result.stderr.strip()}")
        return result.stdout.strip()

    def _ensure_database(self) -> None:
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if exists != "1":
            self.psql(f'CREATE DATABASE "{self.database}"')

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
