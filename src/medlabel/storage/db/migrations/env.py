"""Alembic environment: runs on the connection medlabel hands it (see migrate.py)."""

from __future__ import annotations

from alembic import context

from medlabel.storage.db.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only used through medlabel.storage.db.migrate
    raise RuntimeError("run migrations through `medlabel db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
