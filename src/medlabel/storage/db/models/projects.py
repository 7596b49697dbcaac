"""Projects, their members, label schemas and exports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medlabel.core.ids import utcnow
from medlabel.storage.db.base import Base


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    #: key for this project's pseudonyms (UIDs, patient ids, date shifts); never exported
    deid_secret: Mapped[str] = mapped_column(String(64))
    #: de-identification options (see medlabel.security.deid.DeidOptions)
    deid_options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: reader study: how many independent readers each image needs (1..20)
    readers_per_image: Mapped[int] = mapped_column(default=1, server_default="1")
    #: reader study: readers below the reviewer role see only their own annotations
    blinded: Mapped[bool] = mapped_column(default=False, server_default="0")
    #: active learning: how the reader queue orders open images (medlabel.active strategies)
    active_strategy: Mapped[str] = mapped_column(
        String(32), default="order", server_default="order"
    )


class ProjectMember(Base):
    __tablename__ = "project_members"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        UniqueConstraint("project_id", "value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    color: Mapped[str] = mapped_column(String(7))
    #: integer written in label masks (mask labels only)
    value: Mapped[int | None] = mapped_column(default=None)
    code_value: Mapped[str | None] = mapped_column(String(64), default=None)
    code_scheme: Mapped[str | None] = mapped_column(String(16), default=None)
    code_meaning: Mapped[str | None] = mapped_column(String(64), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Export(Base):
    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    format: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: the zipped result in the blob store (API exports); None when written to a folder
    digest: Mapped[str | None] = mapped_column(String(64), default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
