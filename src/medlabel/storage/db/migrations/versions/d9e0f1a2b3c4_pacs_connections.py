"""PACS connections of projects (DICOMweb)

Revision ID: d9e0f1a2b3c4
Revises: c8d9e0f1a2b3
Create Date: 2026-11-22 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import medlabel.storage.db.base

revision = "d9e0f1a2b3c4"
down_revision = "c8d9e0f1a2b3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pacs_connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("auth_kind", sa.String(length=16), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=True),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", medlabel.storage.db.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_pacs_connections_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_pacs_connections_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pacs_connections")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_pacs_connections_project_id_name")),
    )
    with op.batch_alter_table("pacs_connections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pacs_connections_project_id"), ["project_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("pacs_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pacs_connections_project_id"))
    op.drop_table("pacs_connections")
