"""What the frontend keeps: conversations, their messages and rate-limit counters."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

# A title is the first question cut to this many characters: what fits one line of the page's list.
TITLE_CHARS = 60
# The page lists at most this many conversations of a browser (the newest); older ones stay reachable by id.
LIST_LIMIT = 200


def title_from(text: str) -> str:
    """A conversation's title from its first question: whitespace collapsed, cut with an ellipsis."""
    words = " ".join(text.split())
    return words if len(words) <= TITLE_CHARS else words[: TITLE_CHARS - 1].rstrip() + "\u2026"


@dataclass(frozen=True)
class Conversation:
    """One chat: who owns it (`page:<browser>`, an API key's id, a gateway user), the model and persona
    chosen at its start, its title ("" until the first question names it) and its last activity."""

    id: str
    owner: str
    model: str
    persona: str = ""
    created: float = field(default_factory=time.time)
    title: str = ""
    updated: float | None = None

    @property
    def last_active(self) -> float:
        return self.updated or self.created


@dataclass(frozen=True)
class Message:
    """One turn. Answers remember the pod and node that produced them, for the page's badge."""

    role: str  # "user" or "assistant"
    content: str
    pod: str = ""
    node: str = ""
    model: str = ""
    created: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class User:
    """A gateway user (the LLM Chat Project seed): a scrypt password hash and the SHA-256 of the API key."""

    username: str
    hashed_password: str
    api_key_digest: str
    token_budget: int | None = None  # model tokens per budget period; None = the frontend's default


@dataclass(frozen=True)
class Npc:
    """A non-player character of the seed gateway, stored in the database."""

    id: str
    char_descr: str
    world_descr: str
    has_scratchpad: bool


class DuplicateError(Exception):
    """A user with that name or key exists already."""


@dataclass(frozen=True)
class Hit:
    """The result of counting one request against a rate-limit window."""

    count: int
    reset_in: float  # seconds until the window closes


def window_of(window_s: int, now: float | None = None) -> tuple[int, float]:
    """The fixed window `now` falls in and the seconds left in it; every replica computes the same window."""
    now = time.time() if now is None else now
    index = math.floor(now / window_s)
    return index, (index + 1) * window_s - now


class Store(Protocol):
    """What every backend (SQLite, PostgreSQL, Redis) implements; safe to share between threads."""

    def create_conversation(self, conversation: Conversation) -> None: ...

    def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    def add_messages(
        self, conversation_id: str, messages: list[Message], replace_last: int = 0, title: str = ""
    ) -> bool:
        """Append messages in order, atomically (a turn's question and answer land together); with
        `replace_last`, the last that many messages go in the same step (a regenerated answer replaces the
        old turn only once the new one is saved). `title` names the conversation if it has no title yet.
        False, and nothing written, when the conversation is gone (deleted while its answer streamed)."""

    def messages(self, conversation_id: str, last: int | None = None) -> list[Message]:
        """The conversation's messages in order; only the `last` ones when given (what a prompt keeps)."""

    def delete_conversation(self, conversation_id: str) -> bool:
        """End a conversation and forget its messages; False if there was none."""

    def list_conversations(self, owner: str, limit: int = LIST_LIMIT) -> list[Conversation]:
        """The owner's conversations, the most recently active first."""

    def rename_conversation(self, conversation_id: str, title: str) -> bool:
        """Set the conversation's title; False if there is no such conversation."""

    def change_owner(self, conversation_id: str, old: str, new: str) -> bool:
        """Hand the conversation to `new` if `old` still owns it, atomically (a conversation made before
        browsers had their own lists is adopted by the browser whose cookie names it); False otherwise."""

    def hit(self, name: str, window_s: int, amount: int = 1) -> Hit:
        """Count `amount` (one request, or a reply's tokens; 0 reads the count) for `name` in the current
        window, atomically and shared by every replica using this store."""

    def create_user(self, user: User) -> None:
        """Add a user; `DuplicateError` when the name or the key is taken."""

    def user_by_key(self, api_key_digest: str) -> User | None: ...

    def save_npc(self, npc: Npc) -> None: ...

    def get_npc(self, npc_id: str) -> Npc | None: ...

    def ping(self) -> None:
        """Raise if the database cannot be reached."""

    def close(self) -> None: ...
