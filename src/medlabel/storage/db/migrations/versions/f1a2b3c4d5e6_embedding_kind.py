"""Image scores record which embedding they hold (model features or thumbnail)

Revision ID: f1a2b3c4d5e6
Revises: e0f1a2b3c4d5
Create Date: 2026-11-22 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "f1a2b3c4d5e6"
down_revision = "e0f1a2b3c4d5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("image_scores", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "embedding_kind",
                sa.String(length=32),
                nullable=False,
                server_default="thumbnail",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("image_scores", schema=None) as batch_op:
        batch_op.drop_column("embedding_kind")
