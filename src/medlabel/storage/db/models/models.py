"""Trained models of a project: one row per version, the model directory in the blob store."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medlabel.core.ids import utcnow
from medlabel.storage.db.base import Base


class ModelVersion(Base):
    """One trained model version of a project and task.

    ``version`` counts up per project and task (1, 2, ...); at most one version per
    project and task is ``active`` (kept so by :mod:`medlabel.services.models`). The model
    directory (``model.json``, ``weights.pt``, optional ``model.onnx``) is stored as one
    uncompressed tar in the blob store (``weights_digest``).
    """

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("project_id", "task", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    #: ``seg``, ``cls`` or ``det`` (medlabel.engines.deep.model_dir.TaskKind)
    task: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column()
    #: the ModelCard (model.json) as JSON
    card: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: ids of the annotation revisions the model was trained and validated on
    revision_ids: Mapped[list[Any]] = mapped_column(default=list)
    #: validation metrics of the best epoch (e.g. ``mean_dice``)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: bytes of the stored model directory (tar)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    weights_digest: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: the training job that made it
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), default=None
    )


class ImageScore(Base):
    """What a model's pre-annotation measured on one image, for active learning.

    One row per image and model version (re-running the same model replaces it).
    ``uncertainty`` is 0 (sure) .. 1 (maximally unsure); ``embedding`` is a short
    feature vector for diversity sampling: the model's own features of the image
    (``embedding_kind`` ``model-features``; comparable between images of one model only)
    or a normalised, downsampled thumbnail (``thumbnail``, rows written before the kind
    was recorded included).
    """

    __tablename__ = "image_scores"
    __table_args__ = (UniqueConstraint("image_id", "model_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    uncertainty: Mapped[float] = mapped_column(default=0.0)
    #: mean max-probability inside the predicted foreground (None: nothing predicted)
    confidence: Mapped[float | None] = mapped_column(default=None)
    #: predicted foreground voxels (all labels)
    foreground: Mapped[int] = mapped_column(BigInteger, default=0)
    embedding: Mapped[list[Any]] = mapped_column(default=list)
    embedding_kind: Mapped[str] = mapped_column(
        String(32), default="thumbnail", server_default="thumbnail"
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
