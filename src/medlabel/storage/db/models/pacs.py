"""PACS connections: a project's DICOMweb servers to search, pull from and push to.

The ``secret`` (basic password or bearer token) is stored as given, because medlabel has
to present it to the PACS; it is never returned by the API or written to logs. Protect
the database accordingly (the home folder is ``0700``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medlabel.core.ids import utcnow
from medlabel.storage.db.base import Base


class PacsConnection(Base):
    __tablename__ = "pacs_connections"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    #: the DICOMweb root, e.g. ``http://orthanc:8042/dicom-web`` (no trailing slash)
    url: Mapped[str] = mapped_column(String(500))
    #: :class:`medlabel.io.dicomweb.AuthKind` value: none, basic or bearer
    auth_kind: Mapped[str] = mapped_column(String(16), default="none")
    username: Mapped[str | None] = mapped_column(String(200), default=None)
    #: password (basic) or token (bearer); never returned by the API
    secret: Mapped[str | None] = mapped_column(Text, default=None)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
