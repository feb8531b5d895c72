"""One small storage layer for history and rate limits: SQLite by default, PostgreSQL or Redis for many."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from kubechat_frontend.store.base import Conversation, Hit, Message, Store
from kubechat_frontend.store.sql import SqlStore

__all__ = ["Conversation", "Hit", "Message", "Store", "open_store"]


def open_store(url: str, password: str = "") -> Store:
    """The store at `url` (`sqlite:///path`, `postgresql://…`, `redis://…`); `password` fills in the URL's."""
    scheme = urlsplit(url).scheme
    if password:
        url = _with_password(url, password)
    if scheme == "sqlite":
        return _open_sqlite(url)
    if scheme in {"postgresql", "postgres"}:
        return _open_postgres(url)
    if scheme in {"redis", "rediss"}:
        from kubechat_frontend.store.redis import RedisStore

        return RedisStore(url)
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


def _open_sqlite(url: str) -> Store:
    # sqlite:///relative.db and sqlite:////absolute.db, as SQLAlchemy spells them.
    path = url.removeprefix("sqlite:///")
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        # WAL lets readers run beside a writer; NORMAL sync is durable across app crashes, fast on commit.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    return SqlStore(connect, param="?", id_type="INTEGER PRIMARY KEY AUTOINCREMENT")


def _open_postgres(url: str) -> Store:
    import psycopg

    return SqlStore(lambda: psycopg.connect(url), param="%s", id_type="BIGSERIAL PRIMARY KEY")
