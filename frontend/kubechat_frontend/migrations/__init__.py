"""The SQL schema under Alembic migrations, brought to head once per rollout under a lock.

`migrate(engine)` is what the frontend runs at start: PostgreSQL takes a transaction-scoped advisory lock
(replicas booting together wait for the first, then find the schema at head), SQLite an exclusive lock on a
file beside the database. No worker ever runs CREATE TABLE beside another.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

# Any fixed 64-bit number, the same in every replica: the key of the PostgreSQL advisory lock.
MIGRATION_LOCK_KEY = 0x6B75626563686174  # "kubechat"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


@contextlib.contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already)."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            # Held until this transaction ends; the migrations run inside it (DDL is transactional here).
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            command.upgrade(_config(connection), "head")
        return
    with _file_lock(engine), engine.begin() as connection:
        command.upgrade(_config(connection), "head")
