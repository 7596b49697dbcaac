"""Background jobs (export, pre-annotation, training...) and their log lines.

A job row is the whole truth about a job: an executor only holds a job id, so a job
survives the process that ran it (see :mod:`medlabel.jobs`). States are
:class:`medlabel.jobs.state.JobState` values.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from medlabel.core.ids import utcnow
from medlabel.storage.db.base import Base


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: None for jobs that belong to no project (administrative work)
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), default=None, index=True
    )
    #: the registered job kind's name, e.g. ``export``
    kind: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    #: the kind's parameters, validated and normalised (defaults filled in)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: what a succeeded job produced (ids of created objects, counts...)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: one-line reason of a failed job (tracebacks go to the job's log, never here)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    progress_done: Mapped[float] = mapped_column(default=0.0)
    #: None while the amount of work is unknown
    progress_total: Mapped[float | None] = mapped_column(default=None)
    progress_message: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: last sign of life of the process running it (see medlabel.jobs.store.recover)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    #: 1 for the first run; a retry or a resume after a restart counts up
    attempt: Mapped[int] = mapped_column(default=1)
    #: ``host:pid`` of the process running (or last running) it
    worker: Mapped[str | None] = mapped_column(String(200), default=None)


class JobLog(Base):
    """One line of a job's log; ``seq`` counts up from 1 per job (across attempts)."""

    __tablename__ = "job_logs"
    __table_args__ = (UniqueConstraint("job_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column()
    attempt: Mapped[int] = mapped_column(default=1)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(8), default="info")
    line: Mapped[str] = mapped_column(Text)
