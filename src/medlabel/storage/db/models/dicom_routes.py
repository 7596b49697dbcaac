"""Routes of the DICOM receiver: which project a called AE title delivers into."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from medlabel.core.ids import utcnow
from medlabel.storage.db.base import Base


class DicomRoute(Base):
    """Studies sent to the receiver with called AE title ``ae_title`` go into ``project_id``.

    ``allowed_calling_aets`` and ``allowed_hosts`` (JSON lists of strings) restrict who may
    send; empty lists allow any sender that can reach the port.
    """

    __tablename__ = "dicom_routes"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: the called AE title (1-16 characters, no backslash, stored without padding)
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    allowed_calling_aets: Mapped[list[Any]] = mapped_column(default=list)
    allowed_hosts: Mapped[list[Any]] = mapped_column(default=list)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
