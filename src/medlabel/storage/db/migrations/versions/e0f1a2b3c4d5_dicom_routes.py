"""DICOM receiver routes (called AE title to project)

Revision ID: e0f1a2b3c4d5
Revises: d9e0f1a2b3c4
Create Date: 2026-11-22 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import medlabel.storage.db.base

revision = "e0f1a2b3c4d5"
down_revision = "d9e0f1a2b3c4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dicom_routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ae_title", sa.String(length=16), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("allowed_calling_aets", sa.JSON(), nullable=False),
        sa.Column("allowed_hosts", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column(
            "created_at", medlabel.storage.db.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_dicom_routes_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_dicom_routes_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dicom_routes")),
        sa.UniqueConstraint("ae_title", name=op.f("uq_dicom_routes_ae_title")),
    )
    with op.batch_alter_table("dicom_routes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dicom_routes_project_id"), ["project_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("dicom_routes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dicom_routes_project_id"))
    op.drop_table("dicom_routes")
