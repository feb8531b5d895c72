"""Fixtures for the frontend's integration tests: real databases (tests/support/databases.py), the real model
server with a tiny model, and the frontend itself as a real gunicorn process (tests/support/frontend.py)."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.databases import (  # noqa: F401 - fixtures, found by pytest by name
    DatabaseServer,
    create_database,
    flush_redis,
    postgres_server,
    redis_server,
    redis_url,
)
from tests.support.frontend import RunningFrontend, run_frontend
from tests.support.procs import free_port, python_env
from tests.support.tiny_models import tiny_model_dir


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def store_config(request: pytest.FixtureRequest, tmp_path) -> dict[str, str]:
    """`STORE` and `STORE_PASSWORD` settings for an empty store of each kind the frontend supports."""
    if request.param == "sqlite":
        return {"STORE": f"sqlite:///{tmp_path}/history.db", "STORE_PASSWORD": ""}
    if request.param == "postgresql":
        server: DatabaseServer = request.getfixturevalue("postgres_server")
        return {"STORE": create_database(server), "STORE_PASSWORD": server.password}
    server = request.getfixturevalue("redis_server")
    flush_redis(server)
    return {"STORE": redis_url(server), "STORE_PASSWORD": server.password}


@dataclass
class ModelServer:
    """A running real model server: its URL, served name and the pod/node names it reports."""

    url: str
    name: str
    pod: str
    node: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def run_model_server(name: str, model_dir: Path, log: Path, **env: str) -> Iterator[ModelServer]:
    """`python -m kubechat_server` configured by its environment contract; returns once `/readyz` is 200."""
    port = free_port()
    pod, node = f"{name}-pod-{secrets.token_hex(2)}", f"node-{secrets.token_hex(2)}"
    environ = python_env(
        KUBECHAT_MODEL_ID=str(model_dir), KUBECHAT_SERVED_MODEL_NAME=name, KUBECHAT_PORT=str(port),
        KUBECHAT_MAX_NEW_TOKENS="12", POD_NAME=pod, NODE_NAME=node, **env,
    )  # fmt: skip
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "kubechat_server", "--host", "127.0.0.1"],
            env=environ, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = ModelServer(f"http://127.0.0.1:{port}", name, pod, node, process, log)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"model server exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"model server not ready in 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def model_server(tmp_path_factory) -> Iterator[ModelServer]:
    """The real model server with a tiny GODEL-architecture model, shared by the session's frontend tests."""
    log = tmp_path_factory.mktemp("model-server") / "server.log"
    with run_model_server("godel", tiny_model_dir("godel"), log) as server:
        yield server


@dataclass
class Keys:
    """A keys file (the mounted Secret) with two users' keys, and the admin key."""

    file: str
    user_key: str
    other_key: str
    admin_key: str

    @property
    def user_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.user_key}"}

    @property
    def other_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.other_key}

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


def make_keys(directory: Path) -> Keys:
    user, other, admin = (secrets.token_urlsafe(24) for _ in range(3))
    path = directory / "api-keys"
    path.write_text(f"# mounted from a Secret\n{user}\n{other}\n")
    return Keys(str(path), user, other, admin)


@pytest.fixture
def keys(tmp_path) -> Keys:
    return make_keys(tmp_path)


@dataclass
class Gateway(Keys):
    """A running frontend with keys, for API tests."""

    url: str = ""
    log: Path = Path()

    def log_lines(self) -> list[dict]:
        return RunningFrontend(self.url, self.log, None).log_lines()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def gateway(model_server, tmp_path_factory) -> Iterator[Gateway]:
    """One frontend (SQLite store, API keys, an admin key) in front of the real model server, per module."""
    directory = tmp_path_factory.mktemp("gateway")
    keys = make_keys(directory)
    settings = {
        "STORE": f"sqlite:///{directory}/history.db",
        "MODELS": [{"name": model_server.name, "url": model_server.url}],
        "PERSONAS": [{"name": "bard", "character": "a travelling bard", "world": "a medieval village"}],
        "API_KEYS_FILE": keys.file, "ADMIN_KEY": keys.admin_key, "SECRET_KEY": "test-secret",
        "RATE_LIMIT": 10_000, "MAX_MESSAGE_CHARS": 1000,
    }  # fmt: skip
    with run_frontend(settings, directory / "frontend.log") as frontend:
        yield Gateway(**vars(keys), url=frontend.url, log=frontend.log)
