"""reader_studies

Revision ID: 8d2e3f4a5b61
Revises: 7c1d2e3f4a50
Create Date: 2026-11-22 07:40:00

Reader studies: readers per image and blinding on projects, the kind of an annotation
(reader or consensus) and when it was submitted, reader assignments and review comments.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import medlabel.storage.db.base

revision = "8d2e3f4a5b61"
down_revision = "7c1d2e3f4a50"
branch_labels = None
depends_on = None

_UTC = medlabel.storage.db.base.UTCDateTime


def upgrade() -> None:
    # Plain ADD COLUMN with constant defaults (no batch): a batch would copy and drop these
    # tables on SQLite, and dropping them cascades to every image and annotation.
    op.add_column(
        "projects", sa.Column("readers_per_image", sa.Integer(), server_default="1", nullable=False)
    )
    op.add_column(
        "projects", sa.Column("blinded", sa.Boolean(), server_default="0", nullable=False)
    )
    op.add_column(
        "annotations",
        sa.Column("kind", sa.String(length=16), server_default="reader", nullable=False),
    )
    op.add_column("annotations", sa.Column("submitted_at", _UTC(timezone=True), nullable=True))
    # annotations submitted before this revision: their last change was the submission
    op.execute(
        "UPDATE annotations SET submitted_at = updated_at WHERE state IN ('submitted', 'approved')"
    )

    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("assigned_by", sa.Integer(), nullable=True),
        sa.Column("assigned_at", _UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assigned_by"],
            ["users.id"],
            name=op.f("fk_assignments_assigned_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_assignments_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_assignments_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_assignments_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
        sa.UniqueConstraint("image_id", "user_id", name=op.f("uq_assignments_image_id_user_id")),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assignments_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_assignments_user_id"), ["user_id"], unique=False)

    op.create_table(
        "review_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("location", sa.JSON(), nullable=True),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.Column("resolved_at", _UTC(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["annotation_id"],
            ["annotations.id"],
            name=op.f("fk_review_comments_annotation_id_annotations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_review_comments_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by"],
            ["users.id"],
            name=op.f("fk_review_comments_resolved_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["revision_id"],
            ["revisions.id"],
            name=op.f("fk_review_comments_revision_id_revisions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_comments")),
    )
    with op.batch_alter_table("review_comments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_review_comments_annotation_id"), ["annotation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("review_comments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_comments_annotation_id"))
    op.drop_table("review_comments")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignments_user_id"))
        batch_op.drop_index(batch_op.f("ix_assignments_project_id"))
    op.drop_table("assignments")
    # ALTER TABLE ... DROP COLUMN (SQLite >= 3.35, PostgreSQL); see upgrade() for why not batch
    op.drop_column("annotations", "submitted_at")
    op.drop_column("annotations", "kind")
    op.drop_column("projects", "blinded")
    op.drop_column("projects", "readers_per_image")
