"""Several conversations per browser: a title per conversation and an index to list an owner's newest.

Conversations made before get their first question as title and their start as last activity (where no
turn set one), so they appear in the lists in the right place.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kubechat_frontend.store.base import title_from

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

conversations = sa.table(
    "conversations", sa.column("id", sa.Text), sa.column("title", sa.Text), sa.column("created", sa.Float),
    sa.column("updated", sa.Float),
)  # fmt: skip
messages = sa.table(
    "messages", sa.column("id"), sa.column("conversation_id", sa.Text), sa.column("role", sa.Text),
    sa.column("content", sa.Text),
)  # fmt: skip


def upgrade() -> None:
    op.add_column("conversations", sa.Column("title", sa.Text, nullable=False, server_default=""))
    op.create_index("conversations_by_owner", "conversations", ["owner", "updated"])
    bind = op.get_bind()
    bind.execute(
        conversations.update()
        .where(conversations.c.updated.is_(None))
        .values(updated=conversations.c.created)
    )
    first_question = (
        sa.select(messages.c.content)
        .where(messages.c.conversation_id == conversations.c.id, messages.c.role == "user")
        .order_by(messages.c.id)
        .limit(1)
        .scalar_subquery()
    )
    rows = bind.execute(sa.select(conversations.c.id, first_question)).all()
    titles = [{"key": id_, "title": title_from(question)} for id_, question in rows if question]
    if titles:
        bind.execute(conversations.update().where(conversations.c.id == sa.bindparam("key")), titles)


def downgrade() -> None:
    op.drop_index("conversations_by_owner", "conversations")
    op.drop_column("conversations", "title")
