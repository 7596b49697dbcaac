"""Evaluation reports made inside a project: a reader or an engine against the reference."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from medlabel.core.ids import utcnow
from medlabel.storage.db.base import Base


class Evaluation(Base):
    """One evaluation report; the report itself (JSON and HTML) lives in the blob store."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: what was evaluated: ``{"kind": "reader", "user_id": .., "name": ..}`` or
    #: ``{"kind": "engine", "engine_name": ..}``
    subject: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: the evaluation's settings (tolerance, seed, which revisions)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cases: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    #: per label: mean Dice, HD95 and their confidence intervals
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: gzip of report.json, and the self-contained report.html
    report_digest: Mapped[str] = mapped_column(String(64))
    html_digest: Mapped[str] = mapped_column(String(64))
