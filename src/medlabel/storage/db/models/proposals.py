"""Proposals: masks an engine suggested, waiting for the person who asked to keep or drop."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from medlabel.core.ids import utcnow
from medlabel.storage.db.base import Base


class Proposal(Base):
    """One engine run for one user on one image, with its cropped mask.

    The mask is stored cropped to its bounding box: a boolean array of shape ``shape``
    whose first voxel sits at voxel ``origin`` ``(plane, row, column)`` of the image.
    Accepting a proposal merges it into the user's annotation as a new revision
    (``revision_id``); rejecting it only records the decision.
    """

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    #: who asked for it (only they may accept or reject it)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    engine_name: Mapped[str] = mapped_column(String(100))
    engine_version: Mapped[str] = mapped_column(String(50))
    #: the request as the engine saw it (EngineRequest.describe() and the scribble inputs)
    prompt: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: name of the project's mask label the proposal is for
    label: Mapped[str] = mapped_column(String(64))
    seconds: Mapped[float] = mapped_column(default=0.0)
    #: voxel (plane, row, column) of the cropped mask's first voxel
    origin: Mapped[list[Any]] = mapped_column()
    #: shape (planes, rows, columns) of the cropped mask
    shape: Mapped[list[Any]] = mapped_column()
    #: the cropped boolean mask (medlabel.io.arrays.encode_array, compressed)
    mask_digest: Mapped[str] = mapped_column(String(64))
    voxels: Mapped[int] = mapped_column(BigInteger, default=0)
    #: facts the engine reported (threshold chosen, iterations, score...)
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: pre-annotation: per-voxel uncertainty (0..1) of the cropped region, a uint8 array
    #: scaled by 255 (medlabel.io.arrays.encode_array, compressed); None for other engines
    uncertainty_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    #: the revision an accepted proposal became
    revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("revisions.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(default=None)
