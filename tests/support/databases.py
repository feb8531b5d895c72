"""Real PostgreSQL and Redis servers for tests, from the Debian packages (`hack/system-deps`), on loopback.

Each server lives in its own temporary directory with a random password and is stopped (and its directory
removed) when the fixture ends, also when the test fails. PostgreSQL refuses to run as root, so under root
it runs as the `postgres` user the Debian package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.procs import die_with_parent, free_port


@dataclass
class DatabaseServer:
    """A running server: where it listens, its password, and its log for when things go wrong.

    `stop()` and `start()` restart the real server process on the same port and data (for fault tests)."""

    host: str
    port: int
    user: str
    password: str
    log: Path
    process: _ServerProcess | None = field(default=None, repr=False)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        """Shut the server down as an operator's restart would (clients see their connections closed)."""
        assert self.process is not None
        self.process.stop()

    def start(self) -> None:
        """Start it again on the same port and data directory, and wait until it answers."""
        assert self.process is not None
        self.process.start()


class _ServerProcess:
    """One database server process that can be stopped and started again with the same command."""

    def __init__(self, argv: list[str], log: Path, what: str, stop_signal: int, **popen) -> None:
        self.argv, self.log, self.what, self.stop_signal, self.popen = argv, log, what, stop_signal, popen
        self.ready: Callable[[], object] = lambda: True
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log_file:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
                **self.popen,
            )
        _wait_until(self.ready, self.process, self.what, self.log)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, self.stop_signal)


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed; run hack/system-deps")
    return found[-1]  # the newest major version


def _as_postgres_user() -> dict:
    """Popen arguments that drop root to the `postgres` user (a no-op when not root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def _stop(process: subprocess.Popen, sig: int) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until(ready, process: subprocess.Popen, what: str, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.2)
    raise RuntimeError(
        f"{what} did not become ready in {timeout_s} s:\n{log.read_text(errors='replace')[-3000:]}"
    )


@contextlib.contextmanager
def postgres() -> Iterator[DatabaseServer]:
    """A fresh PostgreSQL cluster (password auth, fsync off: the data must survive a clean restart, not
    a crash)."""
    import psycopg

    workdir = Path(tempfile.mkdtemp(prefix="kubechat-pg-"))
    process = None
    try:
        if os.geteuid() == 0:
            shutil.chown(workdir, "postgres", "postgres")
        password = secrets.token_urlsafe(16)
        pwfile = workdir / "pwfile"
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        data, log = workdir / "data", workdir / "postgres.log"
        subprocess.run(
            [_postgres_bin("initdb"), "-D", str(data), "-U", "kubechat", "--auth=scram-sha-256",
             f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync", "--no-instructions"],
            check=True, capture_output=True, cwd=workdir, **_as_postgres_user(),
        )  # fmt: skip
        port = free_port()
        # SIGINT is PostgreSQL's "fast" shutdown: do not wait for clients to leave.
        process = _ServerProcess(
            [_postgres_bin("postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
             "-k", str(workdir), "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=300"],
            log, "postgres", signal.SIGINT, cwd=workdir, **_as_postgres_user(),
        )  # fmt: skip
        server = DatabaseServer("127.0.0.1", port, "kubechat", password, log, process)
        process.ready = lambda: (
            psycopg.connect(postgres_url(server, "postgres", with_password=True)).close() is None
        )
        process.start()
        yield server
    finally:
        if process is not None:
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def postgres_url(server: DatabaseServer, database: str, *, with_password: bool = False) -> str:
    """The store URL of `database`; without the password, which the frontend takes from its own setting."""
    secret = f":{server.password}" if with_password else ""
    return f"postgresql://{server.user}{secret}@{server.host}:{server.port}/{database}"


def create_database(server: DatabaseServer) -> str:
    """A new empty database on `server`; returns its URL without the password."""
    import psycopg

    name = "kubechat_" + secrets.token_hex(6)
    with psycopg.connect(postgres_url(server, "postgres", with_password=True), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_url(server, name)


@contextlib.contextmanager
def redis() -> Iterator[DatabaseServer]:
    """A fresh Redis with a password and an append-only file (data survive a restart)."""
    import redis as redis_client

    workdir = Path(tempfile.mkdtemp(prefix="kubechat-redis-"))
    process = None
    try:
        password = secrets.token_urlsafe(16)
        port, log = free_port(), workdir / "redis.log"
        config = workdir / "redis.conf"
        # The password goes in a config file, not argv, so `ps` does not show it.
        config.write_text(f"requirepass {password}\n")
        # An append-only file, as a production Redis holding chat history needs, so a restart keeps the data.
        process = _ServerProcess(
            ["redis-server", str(config), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(workdir)],
            log, "redis-server", signal.SIGTERM,
        )  # fmt: skip
        server = DatabaseServer("127.0.0.1", port, "", password, log, process)
        process.ready = lambda: redis_client.Redis(host=server.host, port=port, password=password).ping()
        process.start()
        yield server
    finally:
        if process is not None:
            process.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def redis_url(server: DatabaseServer, db: int = 0) -> str:
    """The store URL of `server` without the password."""
    return f"redis://{server.host}:{server.port}/{db}"


def flush_redis(server: DatabaseServer) -> None:
    import redis as redis_client

    with redis_client.Redis(host=server.host, port=server.port, password=server.password) as client:
        client.flushall()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[DatabaseServer]:
    """One PostgreSQL for the test session; give each test its own database with `create_database`."""
    with postgres() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[DatabaseServer]:
    """One Redis for the test session; `flush_redis` it at the start of each test that needs it empty."""
    with redis() as server:
        yield server
