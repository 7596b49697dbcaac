"""Reader studies: who reads which image (assignments) and what reviewers said (comments)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medlabel.core.ids import utcnow
from medlabel.storage.db.base import Base


class Assignment(Base):
    """One reader slot of an image: ``user_id`` is to read ``image_id``.

    Together with the owners of reader annotations these are the image's readers; a
    project wants ``Project.readers_per_image`` of them per image.
    """

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("image_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: who assigned it: a reviewer, the reader themself (queue or first save), None if removed
    assigned_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    assigned_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReviewComment(Base):
    """A reviewer's (or the reader's) remark on an annotation, optionally pinned to a voxel.

    ``kind`` is ``comment`` for a plain remark, or the review decision (``approve`` /
    ``reject``) it was given with. ``location`` is ``{"position": [plane, row, column],
    "position_mm": [x, y, z]}`` (voxel indices as in :mod:`medlabel.annotation.content`,
    LPS millimetres) or None for the whole image.
    """

    __tablename__ = "review_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), index=True
    )
    #: the revision the comment is about (the head when it was written)
    revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("revisions.id", ondelete="SET NULL"), default=None
    )
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    kind: Mapped[str] = mapped_column(String(16), default="comment")
    text: Mapped[str] = mapped_column(Text)
    location: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    resolved_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
