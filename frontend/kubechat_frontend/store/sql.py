"""The SQL storage backend (SQLite and PostgreSQL) on SQLAlchemy Core, whose pool checks each connection
before use (`pool_pre_ping`) and bounds the wait for one, so a database restart costs a reconnect, not an
error per dead pooled connection."""

from __future__ import annotations

import random
import time

from sqlalchemy import Engine, delete, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from kubechat_frontend.store.base import (
    LIST_LIMIT,
    Conversation,
    DuplicateError,
    Hit,
    Message,
    Npc,
    User,
    title_from,
    window_of,
)
from kubechat_frontend.store.tables import conversations, messages, npcs, rate_counters, users

CONVERSATION = tuple(
    conversations.c[n] for n in ("id", "owner", "model", "persona", "created", "title", "updated")
)  # the columns of a `Conversation`, in its fields' order

# Expired counters and idle conversations are swept now and then instead of on every request.
SWEEP_PROBABILITY = 0.01


class SqlStore:
    """A `Store` over a SQLAlchemy engine whose schema `migrations.migrate` has brought to head."""

    def __init__(self, engine: Engine, retention_s: float = 0) -> None:
        self.engine = engine
        self._retention_s = retention_s
        self._upsert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    def create_conversation(self, conversation: Conversation) -> None:
        c = conversation
        with self.engine.begin() as conn:
            conn.execute(
                insert(conversations).values(
                    id=c.id, owner=c.owner, model=c.model, persona=c.persona, created=c.created,
                    updated=c.updated or c.created, title=c.title,
                )
            )  # fmt: skip

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*CONVERSATION).where(conversations.c.id == conversation_id)).first()
        return Conversation(*row) if row else None

    def list_conversations(self, owner: str, limit: int = LIST_LIMIT) -> list[Conversation]:
        query = (
            select(*CONVERSATION)
            .where(conversations.c.owner == owner)
            .order_by(conversations.c.updated.desc(), conversations.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [Conversation(*row) for row in conn.execute(query)]

    def rename_conversation(self, conversation_id: str, title: str) -> bool:
        with self.engine.begin() as conn:
            renamed = conn.execute(
                update(conversations).where(conversations.c.id == conversation_id).values(title=title)
            )
        return renamed.rowcount > 0

    def change_owner(self, conversation_id: str, old: str, new: str) -> bool:
        this = conversations.c.id == conversation_id
        with self.engine.begin() as conn:
            if (
                conn.execute(
                    update(conversations).where(this, conversations.c.owner == old).values(owner=new)
                ).rowcount
                == 0
            ):
                return False
            # A conversation from before titles (migration 0002 names those it found) gets its first question.
            first_question = conn.execute(
                select(messages.c.content)
                .where(messages.c.conversation_id == conversation_id, messages.c.role == "user")
                .order_by(messages.c.id)
                .limit(1)
            ).scalar()
            if first_question:
                untitled = conversations.c.title == ""
                conn.execute(
                    update(conversations).where(this, untitled).values(title=title_from(first_question))
                )
        return True

    def add_messages(
        self, conversation_id: str, new: list[Message], replace_last: int = 0, title: str = ""
    ) -> bool:
        now = time.time()
        this = conversations.c.id == conversation_id
        with self.engine.begin() as conn:  # the question and its answer land together or not at all
            # First, so a conversation deleted meanwhile gets nothing (and its row lock orders the writers).
            if conn.execute(update(conversations).where(this).values(updated=now)).rowcount == 0:
                return False
            if title:
                untitled = conversations.c.title == ""
                conn.execute(update(conversations).where(this, untitled).values(title=title))
            if replace_last:
                newest = (
                    select(messages.c.id)
                    .where(messages.c.conversation_id == conversation_id)
                    .order_by(messages.c.id.desc())
                    .limit(replace_last)
                )
                conn.execute(delete(messages).where(messages.c.id.in_(newest)))
            conn.execute(
                insert(messages),
                [
                    {"conversation_id": conversation_id, "role": m.role, "content": m.content, "pod": m.pod,
                     "node": m.node, "model": m.model, "created": m.created}
                    for m in new
                ],
            )  # fmt: skip
        if self._retention_s and random.random() < SWEEP_PROBABILITY:
            self.expire_idle(now - self._retention_s)
        return True

    def messages(self, conversation_id: str, last: int | None = None) -> list[Message]:
        columns = (messages.c[n] for n in ("role", "content", "pod", "node", "model", "created"))
        query = (
            select(*columns)
            .where(messages.c.conversation_id == conversation_id)
            .order_by(messages.c.id.desc())
        )
        if last is not None:
            query = query.limit(last)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [Message(*row) for row in reversed(rows)]

    def delete_conversation(self, conversation_id: str) -> bool:
        with self.engine.begin() as conn:
            conn.execute(delete(messages).where(messages.c.conversation_id == conversation_id))
            result = conn.execute(delete(conversations).where(conversations.c.id == conversation_id))
        return result.rowcount > 0

    def expire_idle(self, before: float) -> int:
        """Delete conversations whose last turn (or start) is older than `before`; how many went."""
        idle = or_(
            conversations.c.updated < before,
            (conversations.c.updated.is_(None)) & (conversations.c.created < before),
        )
        with self.engine.begin() as conn:
            conn.execute(
                delete(messages).where(messages.c.conversation_id.in_(select(conversations.c.id).where(idle)))
            )
            return conn.execute(delete(conversations).where(idle)).rowcount

    def hit(self, name: str, window_s: int, amount: int = 1) -> Hit:
        index, reset_in = window_of(window_s)
        now = time.time()
        # One atomic upsert, so concurrent replicas never lose a count.
        statement = self._upsert(rate_counters).values(
            name=f"{name}@{index}", count=amount, expires=now + reset_in
        )
        statement = statement.on_conflict_do_update(
            index_elements=[rate_counters.c.name], set_={"count": rate_counters.c.count + amount}
        ).returning(rate_counters.c.count)
        with self.engine.begin() as conn:
            count = conn.execute(statement).scalar_one()
            if random.random() < SWEEP_PROBABILITY:
                conn.execute(delete(rate_counters).where(rate_counters.c.expires < now))
        return Hit(count=count, reset_in=reset_in)

    def create_user(self, user: User) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(users).values(
                        username=user.username,
                        hashed_password=user.hashed_password,
                        api_key=user.api_key_digest,
                        token_budget=user.token_budget,
                    )
                )
        except IntegrityError as error:
            raise DuplicateError(user.username) from error

    def user_by_key(self, api_key_digest: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    users.c.username, users.c.hashed_password, users.c.api_key, users.c.token_budget
                ).where(users.c.api_key == api_key_digest)
            ).first()
        return User(*row) if row else None

    def save_npc(self, npc: Npc) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(npcs).values(
                    id=npc.id, char_descr=npc.char_descr, world_descr=npc.world_descr,
                    has_scratchpad=npc.has_scratchpad,
                )
            )  # fmt: skip

    def get_npc(self, npc_id: str) -> Npc | None:
        columns = (npcs.c[n] for n in ("id", "char_descr", "world_descr", "has_scratchpad"))
        with self.engine.connect() as conn:
            row = conn.execute(select(*columns).where(npcs.c.id == npc_id)).first()
        return Npc(*row) if row else None

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

    def close(self) -> None:
        self.engine.dispose()
