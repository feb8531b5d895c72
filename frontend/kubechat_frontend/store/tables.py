"""The SQL tables as SQLAlchemy Core sees them, for queries; the migrations (`migrations/`) create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("persona", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=True),  # last turn; idle conversations expire by it, lists sort by it
    Column("title", Text, nullable=False, server_default=""),  # "" until the first question names it
)

messages = Table(
    "messages",
    metadata,
    # SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("conversation_id", Text, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("role", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("pod", Text, nullable=False),
    Column("node", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("created", Float, nullable=False),
)

rate_counters = Table(
    "rate_counters",
    metadata,
    Column("name", Text, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("expires", Float, nullable=False),
)

# The LLM Chat Project seed's tables, as its README creates them (users, npcs).
users = Table(
    "users",
    metadata,
    Column("username", String, primary_key=True),
    Column("hashed_password", String),
    Column("api_key", String, unique=True),
    Column("token_budget", Integer, nullable=True),  # model tokens per period; NULL = the default
)

npcs = Table(
    "npcs",
    metadata,
    Column("id", String, primary_key=True),
    Column("char_descr", Text, nullable=False),
    Column("world_descr", Text, nullable=False),
    Column("has_scratchpad", Boolean, nullable=False),
)
