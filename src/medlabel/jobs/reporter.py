"""What a running job gets to talk to the world: progress, log lines and cancellation.

A job kind's function receives a :class:`Reporter`. It calls :meth:`~Reporter.progress`
and :meth:`~Reporter.log` as often as it likes (the database reporter batches them and
writes at most every ``min_interval`` seconds), and :meth:`~Reporter.check_cancelled` at
points where stopping is safe: it raises :class:`JobCancelled`, which the runner turns
into the ``cancelled`` state.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.exc import SQLAlchemyError

from medlabel.core.ids import utcnow
from medlabel.storage.db.engine import Database

log = logging.getLogger(__name__)

#: longest log line kept (longer ones are cut)
MAX_LINE_CHARS = 4000
#: log lines kept per attempt; later ones are dropped (one line says so)
MAX_LINES = 10_000


class JobCancelled(BaseException):
    """Raised inside a job by :meth:`Reporter.check_cancelled` when it should stop.

    It derives from :class:`BaseException` so that a job's ``except Exception`` does not
    swallow it; clean up in ``finally`` blocks and let it propagate.
    """


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Reporter(ABC):
    """The job's side of progress, logs and cancellation."""

    @abstractmethod
    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report that ``done`` of ``total`` units are finished (``total`` None: unknown;
        ``message`` None: keep the previous message)."""

    @abstractmethod
    def log(self, line: str, level: LogLevel | str = LogLevel.INFO) -> None:
        """Append a line to the job's log (readable while the job runs)."""

    @abstractmethod
    def cancelled(self) -> bool:
        """Whether someone asked the job to stop."""

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if the job should stop."""
        if self.cancelled():
            raise JobCancelled()

    def stage_progress(self, stage: str, done: int, total: int) -> None:
        """A ``(stage, done, total)`` progress callback, as service functions take it
        (e.g. :func:`medlabel.services.exports.write_export`); also a cancellation point."""
        self.progress(done, total, stage)
        self.check_cancelled()


@dataclass
class MemoryReporter(Reporter):
    """A reporter that keeps everything in memory: for tests, and for running a job
    kind's function outside the job system."""

    updates: list[tuple[float, float | None, str]] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        last = self.updates[-1][2] if self.updates else ""
        self.updates.append((float(done), total, last if message is None else message))

    def log(self, line: str, level: LogLevel | str = LogLevel.INFO) -> None:
        self.lines.append((LogLevel(level).value, line))

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def cancel(self) -> None:
        self.cancel_event.set()


class DbReporter(Reporter):
    """Writes progress and log lines to the job's row, batched (thread-safe).

    Every write (:meth:`flush`) also refreshes the job's heartbeat and reads its
    ``cancel_requested`` flag, so a cancel requested from any process reaches the job.
    If the row is no longer this attempt's (the job was recovered or deleted meanwhile)
    the reporter is *lost*: it stops writing and signals cancellation.

    Parameters
    ----------
    db
        The database holding the job.
    job_id, attempt
        The job and the attempt this reporter writes for.
    cancel_event
        Set when the job should stop (by the executor, or by a flush that saw the flag).
    min_interval
        Seconds between writes caused by :meth:`progress` and :meth:`log` calls.
    """

    def __init__(
        self,
        db: Database,
        job_id: int,
        attempt: int,
        *,
        cancel_event: threading.Event | None = None,
        min_interval: float = 0.5,
    ) -> None:
        self.db = db
        self.job_id = job_id
        self.attempt = attempt
        self.cancel_event = cancel_event or threading.Event()
        self.min_interval = min_interval
        self.lost = False
        #: the database said a user asked for cancellation (not just a shutdown)
        self.cancel_requested = False
        self._lock = threading.RLock()
        self._lines: list[tuple[dt.datetime, str, str]] = []
        self._written = 0
        self._dropped = False
        self._progress: tuple[float, float | None, str | None] | None = None
        self._last_flush = -1e18

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        with self._lock:
            self._progress = (float(done), None if total is None else float(total), message)
            self._maybe_flush()

    def log(self, line: str, level: LogLevel | str = LogLevel.INFO) -> None:
        level = LogLevel(level).value
        with self._lock:
            for part in str(line).splitlines() or [""]:
                if self._written + len(self._lines) >= MAX_LINES:
                    if not self._dropped:
                        self._dropped = True
                        note = f"(more than {MAX_LINES} log lines: the rest are dropped)"
                        self._lines.append((utcnow(), LogLevel.WARNING.value, note))
                    break
                self._lines.append((utcnow(), level, part[:MAX_LINE_CHARS]))
            self._maybe_flush(force=len(self._lines) >= 500)

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def _maybe_flush(self, *, force: bool = False) -> None:
        if force or time.monotonic() - self._last_flush >= self.min_interval:
            try:
                self.flush()
            except SQLAlchemyError:  # keep working; the next flush retries
                log.warning("job %s: could not write progress", self.job_id, exc_info=True)

    def flush(self) -> None:
        """Write pending progress and log lines, refresh the heartbeat, read the cancel
        flag."""
        from medlabel.jobs import store

        with self._lock:
            self._last_flush = time.monotonic()
            if self.lost:
                self._lines.clear()
                return
            with self.db.write() as s:
                job = store.lock_job(s, self.job_id)
                if job is None or job.state != "running" or job.attempt != self.attempt:
                    self.lost = True
                    self._lines.clear()
                    self.cancel_event.set()
                    log.warning("job %s attempt %s: no longer ours", self.job_id, self.attempt)
                    return
                store.add_log_lines(s, job, self._lines)  # first: it queries (autoflush)
                if self._progress is not None:
                    done, total, message = self._progress
                    job.progress_done, job.progress_total = done, total
                    if message is not None:
                        job.progress_message = message[:500]
                job.heartbeat_at = utcnow()
                if job.cancel_requested:
                    self.cancel_requested = True
                    self.cancel_event.set()
            self._written += len(self._lines)
            self._lines = []
            self._progress = None
