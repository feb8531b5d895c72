"""The Redis storage backend: a hash per conversation, a list of JSON messages, a sorted set per owner
(conversation ids scored by last activity, for the page's list), expiring counters.

Writes that must not bring a deleted conversation back (a turn saved, a rename, an adoption) run as
WATCH/MULTI transactions on the conversation's hash: redis-py retries them if the hash changes meanwhile."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict

import redis
from redis.client import Pipeline

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

PREFIX = "kubechat:"


class RedisStore:
    """A `Store` on Redis; redis-py's client is thread-safe and pools its own connections."""

    def __init__(self, url: str, retention_s: float = 0) -> None:
        # Timeouts so a Redis that stops answering fails a request instead of holding its thread forever.
        self._redis = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
        )
        self._ttl = int(retention_s)

    def _keep(self, pipe: Pipeline, conversation_id: str, owner: str) -> None:
        """Queue the restart of the conversation's expiry (retention) and its owner's list's; without
        retention keys live on. An id left in a list after its conversation expired is dropped on reading."""
        if self._ttl:
            pipe.expire(self._conversation_key(conversation_id), self._ttl)
            pipe.expire(self._messages_key(conversation_id), self._ttl)
            pipe.expire(self._owner_key(owner), self._ttl)

    @staticmethod
    def _conversation_key(conversation_id: str) -> str:
        return f"{PREFIX}conversation:{conversation_id}"

    @staticmethod
    def _messages_key(conversation_id: str) -> str:
        return f"{PREFIX}messages:{conversation_id}"

    @staticmethod
    def _owner_key(owner: str) -> str:
        return f"{PREFIX}owned:{owner}"

    def create_conversation(self, conversation: Conversation) -> None:
        c = conversation
        updated = c.updated or c.created
        pipe = self._redis.pipeline()  # MULTI/EXEC: the conversation and its place in the owner's list
        pipe.hset(
            self._conversation_key(c.id),
            mapping={"owner": c.owner, "model": c.model, "persona": c.persona, "created": repr(c.created),
                     "title": c.title, "updated": repr(updated)},
        )  # fmt: skip
        pipe.zadd(self._owner_key(c.owner), {c.id: updated})
        self._keep(pipe, c.id, c.owner)
        pipe.execute()

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        fields = self._redis.hgetall(self._conversation_key(conversation_id))
        return self._conversation(conversation_id, fields)

    @staticmethod
    def _conversation(conversation_id: str, fields: dict[str, str]) -> Conversation | None:
        if not fields:
            return None
        return Conversation(
            id=conversation_id,
            owner=fields["owner"],
            model=fields["model"],
            persona=fields["persona"],
            created=float(fields["created"]),
            # Conversations saved before lists existed have neither; their first turn gives the title.
            title=fields.get("title", ""),
            updated=float(fields["updated"]) if "updated" in fields else None,
        )

    def _change(self, conversation_id: str, write: Callable[[Pipeline, dict[str, str]], object]) -> bool:
        """Run `write(pipe, fields)` in a MULTI/EXEC that happens only if the conversation still exists and
        did not change since `fields` were read; False when it is gone."""
        key = self._conversation_key(conversation_id)

        def attempt(pipe: Pipeline) -> bool:
            fields = pipe.hgetall(key)
            if not fields:
                return False
            pipe.multi()
            write(pipe, fields)
            return True

        return self._redis.transaction(attempt, key, value_from_callable=True)

    def add_messages(
        self, conversation_id: str, messages: list[Message], replace_last: int = 0, title: str = ""
    ) -> bool:
        now = time.time()

        def write(pipe: Pipeline, fields: dict[str, str]) -> None:
            # The replaced messages trimmed and the new ones pushed together, in order.
            key = self._messages_key(conversation_id)
            if replace_last:
                pipe.ltrim(key, 0, -(replace_last + 1))
            if messages:
                pipe.rpush(key, *(json.dumps(m.to_dict()) for m in messages))
            pipe.hset(self._conversation_key(conversation_id), "updated", repr(now))
            if title and not fields.get("title"):
                pipe.hset(self._conversation_key(conversation_id), "title", title)
            pipe.zadd(self._owner_key(fields["owner"]), {conversation_id: now})
            self._keep(pipe, conversation_id, fields["owner"])

        return self._change(conversation_id, write)

    def list_conversations(self, owner: str, limit: int = LIST_LIMIT) -> list[Conversation]:
        ids = self._redis.zrevrange(self._owner_key(owner), 0, limit - 1)
        pipe = self._redis.pipeline(transaction=False)
        for conversation_id in ids:
            pipe.hgetall(self._conversation_key(conversation_id))
        found = [self._conversation(i, fields) for i, fields in zip(ids, pipe.execute(), strict=True)]
        gone = [i for i, conversation in zip(ids, found, strict=True) if conversation is None]
        if gone:  # expired by retention: their hash went, their id stayed in the list
            self._redis.zrem(self._owner_key(owner), *gone)
        return [c for c in found if c is not None and c.owner == owner]

    def rename_conversation(self, conversation_id: str, title: str) -> bool:
        return self._change(
            conversation_id,
            lambda pipe, _fields: pipe.hset(self._conversation_key(conversation_id), "title", title),
        )

    def change_owner(self, conversation_id: str, old: str, new: str) -> bool:
        adopted = False
        # A conversation from before titles gets its first question as one (as SQL's migration 0002 does).
        first = self._redis.lindex(self._messages_key(conversation_id), 0)
        first_question = json.loads(first) if first else {}

        def write(pipe: Pipeline, fields: dict[str, str]) -> None:
            nonlocal adopted
            if fields["owner"] != old:
                return
            adopted = True
            updated = float(fields.get("updated") or fields["created"])
            key = self._conversation_key(conversation_id)
            pipe.hset(key, "owner", new)
            if not fields.get("title") and first_question.get("role") == "user":
                pipe.hset(key, "title", title_from(first_question["content"]))
            pipe.zrem(self._owner_key(old), conversation_id)
            pipe.zadd(self._owner_key(new), {conversation_id: updated})
            self._keep(pipe, conversation_id, new)

        return self._change(conversation_id, write) and adopted

    def messages(self, conversation_id: str, last: int | None = None) -> list[Message]:
        if last == 0:
            return []
        raw_messages = self._redis.lrange(self._messages_key(conversation_id), -last if last else 0, -1)
        return [Message(**json.loads(raw)) for raw in raw_messages]

    def delete_conversation(self, conversation_id: str) -> bool:
        owner = self._redis.hget(self._conversation_key(conversation_id), "owner")
        pipe = self._redis.pipeline()
        pipe.delete(self._conversation_key(conversation_id), self._messages_key(conversation_id))
        if owner is not None:
            pipe.zrem(self._owner_key(owner), conversation_id)
        return pipe.execute()[0] > 0

    def hit(self, name: str, window_s: int, amount: int = 1) -> Hit:
        index, reset_in = window_of(window_s)
        key = f"{PREFIX}rate:{name}@{index}"
        pipe = self._redis.pipeline()  # MULTI/EXEC: the count and its expiry are set together
        pipe.incrby(key, amount)
        pipe.expire(key, window_s + 1)
        count, _ = pipe.execute()
        return Hit(count=int(count), reset_in=reset_in)

    def create_user(self, user: User) -> None:
        by_key = f"{PREFIX}user-key:{user.api_key_digest}"
        # SETNX on the key's index first: two users can never share a key, even when created at once.
        if not self._redis.set(by_key, user.username, nx=True):
            raise DuplicateError(user.username)
        fields = {"hashed_password": user.hashed_password, "api_key": user.api_key_digest}
        if user.token_budget is not None:
            fields["token_budget"] = str(user.token_budget)
        if not self._redis.hsetnx(f"{PREFIX}user:{user.username}", "api_key", user.api_key_digest):
            self._redis.delete(by_key)
            raise DuplicateError(user.username)
        self._redis.hset(f"{PREFIX}user:{user.username}", mapping=fields)

    def user_by_key(self, api_key_digest: str) -> User | None:
        username = self._redis.get(f"{PREFIX}user-key:{api_key_digest}")
        fields = self._redis.hgetall(f"{PREFIX}user:{username}") if username else {}
        if not fields:
            return None
        budget = fields.get("token_budget")
        return User(username, fields["hashed_password"], fields["api_key"], int(budget) if budget else None)

    def save_npc(self, npc: Npc) -> None:
        self._redis.set(f"{PREFIX}npc:{npc.id}", json.dumps(asdict(npc)))

    def get_npc(self, npc_id: str) -> Npc | None:
        raw = self._redis.get(f"{PREFIX}npc:{npc_id}")
        return Npc(**json.loads(raw)) if raw else None

    def ping(self) -> None:
        self._redis.ping()

    def close(self) -> None:
        self._redis.close()
