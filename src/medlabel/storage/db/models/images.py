"""Imported data: studies, series, DICOM instances, images (the annotatable unit), imports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medlabel.core.ids import utcnow
from medlabel.storage.db.base import Base


class ImportRecord(Base):
    """One import (a CLI run or an upload) with its report of what was stored or removed."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: counts: files, instances, images, duplicates, skipped
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: de-identification report and per-file notes (no original identifiers)
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: ``done``, or ``preparing`` while a background import's images are being built
    #: (then ``done``, or ``failed`` when the building job failed)
    status: Mapped[str] = mapped_column(String(16), default="done", server_default="done")


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (UniqueConstraint("project_id", "study_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    study_uid: Mapped[str] = mapped_column(String(64))
    patient_pseudonym: Mapped[str] = mapped_column(String(64), default="")
    study_date: Mapped[str | None] = mapped_column(String(8), default=None)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Series(Base):
    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("project_id", "series_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    series_uid: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16), default="OT")
    series_number: Mapped[int | None] = mapped_column(default=None)
    description: Mapped[str] = mapped_column(String(200), default="")
    frame_of_reference_uid: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Image(Base):
    """A 2D image or a 3D volume: the unit that is viewed and annotated."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    series_id: Mapped[int | None] = mapped_column(
        ForeignKey("series.id", ondelete="CASCADE"), default=None, index=True
    )
    import_id: Mapped[int | None] = mapped_column(
        ForeignKey("imports.id", ondelete="SET NULL"), default=None
    )
    name: Mapped[str] = mapped_column(String(255))
    source_format: Mapped[str] = mapped_column(String(16))
    modality: Mapped[str] = mapped_column(String(16), default="OT")
    #: (planes, rows, columns)
    shape: Mapped[list[Any]] = mapped_column()
    channels: Mapped[int] = mapped_column(default=1)
    dtype: Mapped[str] = mapped_column(String(16))
    #: 4x4 voxel-to-LPS affine, row-major
    affine: Mapped[list[Any]] = mapped_column()
    geometry_known: Mapped[bool] = mapped_column(default=True)
    pixel_digest: Mapped[str] = mapped_column(String(64))
    pixel_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    thumbnail_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    window_center: Mapped[float | None] = mapped_column(default=None)
    window_width: Mapped[float | None] = mapped_column(default=None)
    #: for DICOM images: the (SOP instance UID, frame index) each plane came from
    plane_sources: Mapped[list[Any] | None] = mapped_column(default=None)
    #: de-identified facts shown in the viewer's metadata panel
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="unlabelled", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Instance(Base):
    """A stored, de-identified DICOM instance and the planes of its image it provides."""

    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("project_id", "sop_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    #: None only while a background import has stored the instance but not yet built
    #: its image (see ``import_id``)
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), default=None, index=True
    )
    #: the import that stored the instance (set for background imports)
    import_id: Mapped[int | None] = mapped_column(
        ForeignKey("imports.id", ondelete="SET NULL"), default=None, index=True
    )
    sop_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(default=None)
    #: plane of the image holding this instance's first frame
    first_plane: Mapped[int] = mapped_column(default=0)
    frames: Mapped[int] = mapped_column(default=1)
    dicom_digest: Mapped[str] = mapped_column(String(64))
    #: SHA-256 of the decoded pixel data, for recognising re-sent content
    pixel_sha: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
