"""One small storage layer for history and rate limits: SQLite by default, PostgreSQL or Redis for many."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy import Engine, create_engine, event

from kubechat_frontend.store.base import Conversation, DuplicateError, Hit, Message, Npc, Store, User
from kubechat_frontend.store.sql import SqlStore

__all__ = [
    "Conversation", "DuplicateError", "Hit", "Message", "Npc", "Store", "User", "open_store", "sql_engine",
]  # fmt: skip

# Threads of one worker share these; each streaming answer holds a connection only while it reads or writes.
POOL_SIZE = 8
POOL_OVERFLOW = 8
POOL_TIMEOUT_S = 10  # a request waits this long for a free connection, then fails (503), never hangs
CONNECT_TIMEOUT_S = 5


def open_store(url: str, password: str = "", retention_days: float = 0) -> Store:
    """The store at `url` (`sqlite:///path`, `postgresql://…`, `redis://…`), its schema migrated to head;
    `password` fills in the URL's; conversations idle longer than `retention_days` expire (0 = never)."""
    scheme = urlsplit(url).scheme
    if password:
        url = _with_password(url, password)
    retention_s = retention_days * 86400
    if scheme in {"redis", "rediss"}:
        from kubechat_frontend.store.redis import RedisStore

        return RedisStore(url, retention_s)
    from kubechat_frontend.migrations import migrate

    engine = sql_engine(url)
    migrate(engine)
    return SqlStore(engine, retention_s)


def sql_engine(url: str) -> Engine:
    """A pooled SQLAlchemy engine for a `sqlite:` or `postgresql:` store URL."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        return _sqlite_engine(url)
    if scheme in {"postgresql", "postgres"}:
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
            pool_timeout=POOL_TIMEOUT_S,
            pool_recycle=1800,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        )
    raise ValueError(f"unsupported store URL scheme {scheme!r} (use sqlite, postgresql or redis)")


def _with_password(url: str, password: str) -> str:
    """The URL with `password` as its password; the user part is kept (redis allows none)."""
    parts = urlsplit(url)
    user = quote(parts.username or "", safe="")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _sqlite_engine(url: str) -> Engine:
    # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy spells them.
    path = url.removeprefix("sqlite:///")
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_S,
        connect_args={"check_same_thread": False, "timeout": 30},
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside a writer; NORMAL sync is durable across app crashes, fast on commit.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine
