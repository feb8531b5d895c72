"""Fixtures for the frontend's integration tests: real databases (tests/support/databases.py), the real model
server with a tiny model, and the frontend itself as a real gunicorn process (tests/support/frontend.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.databases import (  # noqa: F401 - fixtures, found by pytest by name
    DatabaseServer,
    create_database,
    flush_redis,
    postgres_server,
    redis_server,
    redis_url,
)
from tests.support.frontend import Keys, RunningFrontend, ServedModel, make_keys, run_frontend, served_model


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


@pytest.fixture
def start_model_server():
    """`start_model_server()`: a context manager running a model server of the test's own (to stop it)."""
    return lambda: served_model("llama", "llama")


@pytest.fixture(scope="session")
def model_server() -> Iterator[ServedModel]:
    """The real model server with a tiny Llama-architecture model, shared by the session's frontend tests.

    (Llama rather than GODEL because the tiny T5 answers with no text at all, and these tests want text.)"""
    with served_model("llama", "llama") as server:
        yield server


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
