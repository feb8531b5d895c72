"""Alembic's entry point: migrations run on the connection `migrate_store` hands over (never from an ini)."""

from __future__ import annotations

from alembic import context

from kubechat_frontend.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
