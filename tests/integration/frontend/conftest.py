"""Fixtures for the frontend's integration tests: real databases (tests/support/databases.py), the real model
server with a tiny model, and the frontend itself as a real gunicorn process (tests/support/frontend.py)."""

from __future__ import annotations

import pytest

from tests.support.databases import (  # noqa: F401 - fixtures, found by pytest by name
    DatabaseServer,
    create_database,
    flush_redis,
    postgres_server,
    redis_server,
    redis_url,
)


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
