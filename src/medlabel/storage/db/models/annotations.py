"""Annotations (one reader's work on one image) and their immutable revisions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medlabel.core.ids import utcnow
from medlabel.storage.db.base import Base


class Annotation(Base):
    """The annotation of an image by one reader; its content is its head revision.

    ``version`` counts saves; a save must name the version it started from, so two
    people editing at once cannot overwrite each other (the second gets HTTP 409).
    """

    __tablename__ = "annotations"
    __table_args__ = (UniqueConstraint("image_id", "owner_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    state: Mapped[str] = mapped_column(String(16), default="draft")
    #: ``reader`` (one person's reading) or ``consensus`` (owner None), see AnnotationKind
    kind: Mapped[str] = mapped_column(String(16), default="reader", server_default="reader")
    head_revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("revisions.id", use_alter=True, ondelete="SET NULL"), default=None
    )
    #: the revision a reviewer approved last: this reader's reference labels
    approved_revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("revisions.id", use_alter=True, ondelete="SET NULL"), default=None
    )
    version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: when it was last submitted for review (the review queue's order)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - SQLAlchemy reads it


class Revision(Base):
    """An immutable snapshot of an annotation's content."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("annotation_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column()
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("revisions.id", ondelete="SET NULL"), default=None
    )
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    source: Mapped[str] = mapped_column(String(16))
    engine_name: Mapped[str | None] = mapped_column(String(100), default=None)
    engine_version: Mapped[str | None] = mapped_column(String(50), default=None)
    prompt: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: boxes, points, classes and notes (AnnotationContent as JSON)
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    mask_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    #: label values present in the mask, with voxel counts
    mask_summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message: Mapped[str] = mapped_column(Text, default="")
    restored_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("revisions.id", ondelete="SET NULL"), default=None
    )


class Draft(Base):
    """Unsaved work of one user on one image (autosave): not a revision, replaced on
    every autosave and removed when the user saves a revision."""

    __tablename__ = "drafts"
    __table_args__ = (UniqueConstraint("image_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: the annotation and version the draft started from (None: no annotation yet)
    annotation_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), default=None
    )
    base_version: Mapped[int | None] = mapped_column(default=None)
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    mask_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
