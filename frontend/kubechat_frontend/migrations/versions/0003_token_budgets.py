"""Token budgets per gateway user: model tokens per budget period (NULL: the frontend's default).

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("token_budget", sa.Integer, nullable=True))


def downgrade() -> None:
    op.drop_column("users", "token_budget")
