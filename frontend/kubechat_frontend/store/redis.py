"""The Redis storage backend: a hash per conversation, a list of JSON messages, expiring counters."""

from __future__ import annotations

import json
from dataclasses import asdict

import redis

from kubechat_frontend.store.base import Conversation, DuplicateError, Hit, Message, Npc, User, window_of

PREFIX = "kubechat:"


class RedisStore:
    """A `Store` on Redis; redis-py's client is thread-safe and pools its own connections."""

    def __init__(self, url: str, retention_s: float = 0) -> None:
        # Timeouts so a Redis that stops answering fails a request instead of holding its thread forever.
        self._redis = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
        )
        self._ttl = int(retention_s)

    def _keep(self, conversation_id: str) -> None:
        """Restart the conversation's expiry (retention) after a write; without retention keys live on."""
        if self._ttl:
            pipe = self._redis.pipeline()
            pipe.expire(self._conversation_key(conversation_id), self._ttl)
            pipe.expire(self._messages_key(conversation_id), self._ttl)
            pipe.execute()

    @staticmethod
    def _conversation_key(conversation_id: str) -> str:
        return f"{PREFIX}conversation:{conversation_id}"

    @staticmethod
    def _messages_key(conversation_id: str) -> str:
        return f"{PREFIX}messages:{conversation_id}"

    def create_conversation(self, conversation: Conversation) -> None:
        c = conversation
        self._redis.hset(
            self._conversation_key(c.id),
            mapping={"owner": c.owner, "model": c.model, "persona": c.persona, "created": repr(c.created)},
        )
        self._keep(c.id)

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        fields = self._redis.hgetall(self._conversation_key(conversation_id))
        if not fields:
            return None
        return Conversation(
            id=conversation_id,
            owner=fields["owner"],
            model=fields["model"],
            persona=fields["persona"],
            created=float(fields["created"]),
        )

    def add_messages(self, conversation_id: str, messages: list[Message], replace_last: int = 0) -> None:
        if messages:
            # One MULTI/EXEC: the replaced messages trimmed and the new ones pushed together, in order.
            key = self._messages_key(conversation_id)
            pipe = self._redis.pipeline()
            if replace_last:
                pipe.ltrim(key, 0, -(replace_last + 1))
            pipe.rpush(key, *(json.dumps(m.to_dict()) for m in messages))
            pipe.execute()
            self._keep(conversation_id)

    def messages(self, conversation_id: str, last: int | None = None) -> list[Message]:
        if last == 0:
            return []
        raw_messages = self._redis.lrange(self._messages_key(conversation_id), -last if last else 0, -1)
        return [Message(**json.loads(raw)) for raw in raw_messages]

    def delete_conversation(self, conversation_id: str) -> bool:
        deleted = self._redis.delete(
            self._conversation_key(conversation_id), self._messages_key(conversation_id)
        )
        return deleted > 0

    def hit(self, name: str, window_s: int) -> Hit:
        index, reset_in = window_of(window_s)
        key = f"{PREFIX}rate:{name}@{index}"
        pipe = self._redis.pipeline()  # MULTI/EXEC: the count and its expiry are set together
        pipe.incr(key)
        pipe.expire(key, window_s + 1)
        count, _ = pipe.execute()
        return Hit(count=int(count), reset_in=reset_in)

    def create_user(self, user: User) -> None:
        by_key = f"{PREFIX}user-key:{user.api_key_digest}"
        # SETNX on the key's index first: two users can never share a key, even when created at once.
        if not self._redis.set(by_key, user.username, nx=True):
            raise DuplicateError(user.username)
        fields = {"hashed_password": user.hashed_password, "api_key": user.api_key_digest}
        if not self._redis.hsetnx(f"{PREFIX}user:{user.username}", "api_key", user.api_key_digest):
            self._redis.delete(by_key)
            raise DuplicateError(user.username)
        self._redis.hset(f"{PREFIX}user:{user.username}", mapping=fields)

    def user_by_key(self, api_key_digest: str) -> User | None:
        username = self._redis.get(f"{PREFIX}user-key:{api_key_digest}")
        fields = self._redis.hgetall(f"{PREFIX}user:{username}") if username else {}
        return User(username, fields["hashed_password"], fields["api_key"]) if fields else None

    def save_npc(self, npc: Npc) -> None:
        self._redis.set(f"{PREFIX}npc:{npc.id}", json.dumps(asdict(npc)))

    def get_npc(self, npc_id: str) -> Npc | None:
        raw = self._redis.get(f"{PREFIX}npc:{npc_id}")
        return Npc(**json.loads(raw)) if raw else None

    def ping(self) -> None:
        self._redis.ping()

    def close(self) -> None:
        self._redis.close()
