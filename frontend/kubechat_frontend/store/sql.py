"""The SQL storage backend; SQLite and PostgreSQL differ only in how they connect and a few types."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from kubechat_frontend.store.base import Conversation, Hit, Message, window_of
from kubechat_frontend.store.pool import ConnectionPool

# {id} is the auto-increment key type, which is what SQLite and PostgreSQL spell differently.
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS conversations (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, model TEXT NOT NULL, persona TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS messages (
        id {id}, conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL, content TEXT NOT NULL, pod TEXT NOT NULL, node TEXT NOT NULL,
        model TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id, id)",
    """CREATE TABLE IF NOT EXISTS rate_counters (
        name TEXT PRIMARY KEY, count INTEGER NOT NULL, expires DOUBLE PRECISION NOT NULL)""",
]

# Expired counters are swept now and then instead of on every request.
SWEEP_PROBABILITY = 0.01


class SqlStore:
    """A `Store` over any DB-API driver whose placeholder is `param` (`?` for sqlite3, `%s` for psycopg)."""

    def __init__(self, connect: Callable[[], Any], *, param: str, id_type: str, pool_size: int = 8) -> None:
        self._pool = ConnectionPool(connect, pool_size)
        self._p = param
        with self._pool.connection() as conn:
            for statement in SCHEMA:
                conn.execute(statement.format(id=id_type))
            conn.commit()

    def _run(self, sql: str, *args: Any, fetch: str = "") -> Any:
        """Run one statement in its own transaction; `fetch` is "", "one" or "all"."""
        with self._pool.connection() as conn:
            cursor = conn.execute(sql.replace("?", self._p), args)
            rows = cursor.fetchone() if fetch == "one" else cursor.fetchall() if fetch == "all" else None
            conn.commit()
            return rows

    def create_conversation(self, conversation: Conversation) -> None:
        c = conversation
        self._run(
            "INSERT INTO conversations (id, owner, model, persona, created) VALUES (?, ?, ?, ?, ?)",
            c.id, c.owner, c.model, c.persona, c.created,
        )  # fmt: skip

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        row = self._run(
            "SELECT id, owner, model, persona, created FROM conversations WHERE id = ?",
            conversation_id,
            fetch="one",
        )
        return Conversation(*row) if row else None

    def add_messages(self, conversation_id: str, messages: list[Message]) -> None:
        sql = (
            "INSERT INTO messages (conversation_id, role, content, pod, node, model, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        ).replace("?", self._p)
        with self._pool.connection() as conn:
            for m in messages:
                conn.execute(sql, (conversation_id, m.role, m.content, m.pod, m.node, m.model, m.created))
            conn.commit()

    def messages(self, conversation_id: str, last: int | None = None) -> list[Message]:
        columns = "id, role, content, pod, node, model, created"
        query = f"SELECT {columns} FROM messages WHERE conversation_id = ? ORDER BY id DESC"
        if last is not None:
            query += f" LIMIT {int(last)}"
        rows = self._run(query, conversation_id, fetch="all")
        return [Message(*row[1:]) for row in reversed(rows)]

    def delete_conversation(self, conversation_id: str) -> bool:
        with self._pool.connection() as conn:
            conn.execute("DELETE FROM messages WHERE conversation_id = " + self._p, (conversation_id,))
            cursor = conn.execute("DELETE FROM conversations WHERE id = " + self._p, (conversation_id,))
            conn.commit()
            return cursor.rowcount > 0

    def hit(self, name: str, window_s: int) -> Hit:
        index, reset_in = window_of(window_s)
        now = time.time()
        # One atomic upsert, so concurrent replicas never lose a count.
        (count,) = self._run(
            "INSERT INTO rate_counters (name, count, expires) VALUES (?, 1, ?)"
            " ON CONFLICT (name) DO UPDATE SET count = rate_counters.count + 1 RETURNING count",
            f"{name}@{index}", now + reset_in, fetch="one",
        )  # fmt: skip
        if random.random() < SWEEP_PROBABILITY:
            self._run("DELETE FROM rate_counters WHERE expires < ?", now)
        return Hit(count=count, reset_in=reset_in)

    def ping(self) -> None:
        self._run("SELECT 1", fetch="one")

    def close(self) -> None:
        self._pool.close()
