"""Conversations, messages, rate counters, and the seed gateway's users and NPCs.

Frontends before migrations made the first three tables with CREATE TABLE IF NOT EXISTS at boot; such a
database is adopted as it is (only the `updated` column that retention reads is added).

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _conversations() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("persona", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("updated", sa.Float, nullable=True),
    )


def _messages() -> None:
    op.create_table(
        "messages",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column(
            "conversation_id",
            sa.Text,
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("pod", sa.Text, nullable=False),
        sa.Column("node", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_index("messages_by_conversation", "messages", ["conversation_id", "id"])


def _rate_counters() -> None:
    op.create_table(
        "rate_counters",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )


def _users() -> None:
    op.create_table(
        "users",
        sa.Column("username", sa.String, primary_key=True),
        sa.Column("hashed_password", sa.String),
        sa.Column("api_key", sa.String, unique=True),
    )


def _npcs() -> None:
    op.create_table(
        "npcs",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("char_descr", sa.Text, nullable=False),
        sa.Column("world_descr", sa.Text, nullable=False),
        sa.Column("has_scratchpad", sa.Boolean, nullable=False),
    )


CREATORS = {
    "conversations": _conversations,
    "messages": _messages,
    "rate_counters": _rate_counters,
    "users": _users,
    "npcs": _npcs,
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    for name, create in CREATORS.items():
        if name not in existing:
            create()
    if "conversations" in existing and "updated" not in {
        c["name"] for c in inspector.get_columns("conversations")
    }:
        op.add_column("conversations", sa.Column("updated", sa.Float, nullable=True))


def downgrade() -> None:
    for name in reversed(CREATORS):
        op.drop_table(name)
