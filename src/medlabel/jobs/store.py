"""Job rows through their life: create, claim, finish, re-queue, recover.

Every change of state is a conditional update checked against
:mod:`medlabel.jobs.state`, so two processes (two server workers, the CLI and a
server) never both run a job, and a runner that lost its job cannot overwrite what
recovery decided.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medlabel.core.ids import utcnow
from medlabel.jobs.reporter import LogLevel
from medlabel.jobs.spec import JobInfo
from medlabel.jobs.state import JobState, check_transition
from medlabel.storage.db.engine import Database
from medlabel.storage.db.models import Job, JobLog

if TYPE_CHECKING:
    from medlabel.jobs.registry import JobKinds

log = logging.getLogger(__name__)

#: the error of a job whose process went away while it ran
INTERRUPTED = "interrupted by a restart"


def worker_id() -> str:
    """``host:pid`` of this process, as recorded on the jobs it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def info_of(job: Job) -> JobInfo:
    return JobInfo(
        id=job.id,
        kind=job.kind,
        project_id=job.project_id,
        created_by=job.created_by,
        attempt=job.attempt,
        params=dict(job.params or {}),
    )


def lock_job(s: Session, job_id: int) -> Job | None:
    """The job's row, locked for this write transaction (PostgreSQL: ``FOR UPDATE``;
    SQLite write transactions hold the database lock anyway)."""
    return s.get(Job, job_id, with_for_update=True, populate_existing=True)


def add_log_lines(s: Session, job: Job, lines: Iterable[tuple[dt.datetime, str, str]]) -> None:
    """Append ``(at, level, line)`` log lines to a job locked in ``s``."""
    lines = list(lines)
    if not lines:
        return
    last = s.scalar(select(func.max(JobLog.seq)).where(JobLog.job_id == job.id)) or 0
    for n, (at, level, line) in enumerate(lines, 1):
        s.add(
            JobLog(
                job_id=job.id,
                seq=last + n,
                attempt=job.attempt,
                at=at,
                level=level,
                line=line,
            )
        )


def note(s: Session, job: Job, line: str, level: LogLevel = LogLevel.INFO) -> None:
    """Append one log line written by the job system itself (not the job)."""
    add_log_lines(s, job, [(utcnow(), level.value, line)])


def create(
    db: Database,
    *,
    kind: str,
    params: dict[str, Any],
    project_id: int | None,
    created_by: int | None,
    running_as: str | None = None,
) -> Job:
    """Insert a queued job (or, with ``running_as``, one already claimed by that
    worker, for a foreground run)."""
    with db.write() as s:
        return add(
            s,
            kind=kind,
            params=params,
            project_id=project_id,
            created_by=created_by,
            running_as=running_as,
        )


def add(
    s: Session,
    *,
    kind: str,
    params: dict[str, Any],
    project_id: int | None,
    created_by: int | None,
    running_as: str | None = None,
) -> Job:
    """:func:`create` inside the caller's write transaction (which may record more, such
    as the job's audit event)."""
    now = utcnow()
    job = Job(
        kind=kind,
        params=params,
        project_id=project_id,
        created_by=created_by,
        state=JobState.QUEUED.value,
        created_at=now,
    )
    if running_as is not None:
        job.state = JobState.RUNNING.value
        job.worker, job.started_at, job.heartbeat_at = running_as, now, now
    s.add(job)
    s.flush()
    note(s, job, f"{kind} job created")
    return job


def claim(db: Database, job_id: int, worker: str) -> JobInfo | None:
    """Move a queued job to running for ``worker``; None if it is not queued any more
    (taken by another worker, cancelled, deleted)."""
    now = utcnow()
    with db.write() as s:
        job = lock_job(s, job_id)
        if job is None or job.state != JobState.QUEUED.value:
            return None
        job.state = JobState.RUNNING.value
        job.worker, job.started_at, job.heartbeat_at = worker, now, now
        job.finished_at, job.error = None, None
        job.progress_done, job.progress_total, job.progress_message = 0.0, None, ""
        note(s, job, f"attempt {job.attempt} started on {worker}")
        return info_of(job)


def finish(
    db: Database,
    job_id: int,
    attempt: int,
    state: JobState,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    line: str | None = None,
    level: LogLevel = LogLevel.INFO,
) -> bool:
    """End a running attempt as ``state`` (succeeded, failed, cancelled or back to
    queued); False if the row is not this running attempt any more."""
    with db.write() as s:
        job = lock_job(s, job_id)
        if job is None or job.state != JobState.RUNNING.value or job.attempt != attempt:
            return False
        _move(job, state, error=error)
        if result is not None:
            job.result = result
        if line:
            note(s, job, line, level)
    return True


def _move(job: Job, state: JobState, *, error: str | None = None) -> None:
    check_transition(job.state, state)
    job.state = state.value
    if state == JobState.QUEUED:  # a new attempt
        job.attempt += 1
        job.cancel_requested = False
        job.started_at = job.finished_at = job.heartbeat_at = None
        job.worker = None
        job.error, job.result = None, {}
        job.progress_done, job.progress_total, job.progress_message = 0.0, None, ""
    else:
        job.finished_at = utcnow()
        job.error = error


def requeue(s: Session, job: Job, reason: str) -> None:
    """Put a failed or cancelled job (user's retry) or an interrupted running one back
    in the queue as a new attempt; ``job`` must be locked in ``s``."""
    _move(job, JobState.QUEUED)
    note(s, job, f"attempt {job.attempt} queued: {reason}")


def request_cancel(s: Session, job: Job, who: str) -> None:
    """Cancel a queued job now; flag a running one (its runner stops at the next check)."""
    state = JobState(job.state)
    check_transition(state, JobState.CANCELLED)
    job.cancel_requested = True
    if state == JobState.QUEUED:
        _move(job, JobState.CANCELLED)
        note(s, job, f"cancelled by {who} before it started")
    else:
        note(s, job, f"cancellation requested by {who}")


def queued_ids(db: Database) -> list[int]:
    with db.read() as s:
        return list(
            s.scalars(select(Job.id).where(Job.state == JobState.QUEUED.value).order_by(Job.id))
        )


# -- recovery ------------------------------------------------------------------------


@dataclass
class Recovery:
    """What :func:`recover` did."""

    failed: list[int] = field(default_factory=list)
    requeued: list[int] = field(default_factory=list)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError:
        return False
    return True


def orphan_reason(
    job: Job,
    *,
    now: dt.datetime,
    stale_seconds: float,
    running_here: Collection[int],
    host: str | None = None,
    pid: int | None = None,
) -> str | None:
    """Why a running job has nobody running it any more, or None if it may be alive.

    Rules, in order: a job a runner of this process has is alive; a job of another
    process on this host is dead when that process is; any job is dead when its
    heartbeat is older than ``stale_seconds`` (other hosts, reused process ids, and jobs
    of this process that no runner has: left by an earlier Context, or just claimed
    for a foreground run).
    """
    host = host or socket.gethostname()
    pid = os.getpid() if pid is None else pid
    w_host, _, w_pid = (job.worker or "").rpartition(":")
    if w_host == host and w_pid.isdigit():
        if int(w_pid) == pid and job.id in running_here:
            return None
        if int(w_pid) != pid and not _pid_alive(int(w_pid)):
            return f"its process {job.worker} is gone"
    beat = job.heartbeat_at or job.started_at or job.created_at
    age = (now - beat).total_seconds()
    if age > stale_seconds:
        return f"no sign of life from {job.worker or 'its worker'} for {age:.0f} s"
    return None


def recover(
    db: Database,
    kinds: JobKinds,
    *,
    stale_seconds: float,
    running_here: Callable[[], Collection[int]],
) -> Recovery:
    """Settle running jobs whose process went away: re-queue those of resumable kinds
    (up to their ``max_attempts``), fail the others with :data:`INTERRUPTED`."""
    out = Recovery()
    with db.read() as s:
        candidates: Sequence[int] = list(
            s.scalars(select(Job.id).where(Job.state == JobState.RUNNING.value))
        )
    for job_id in candidates:
        with db.write() as s:
            job = lock_job(s, job_id)
            if job is None or job.state != JobState.RUNNING.value:
                continue
            reason = orphan_reason(
                job, now=utcnow(), stale_seconds=stale_seconds, running_here=running_here()
            )
            if reason is None:
                continue
            kind = kinds.get(job.kind) if job.kind in kinds else None
            if kind is not None and kind.resumable and job.attempt < kind.max_attempts:
                note(s, job, f"attempt {job.attempt} was interrupted ({reason})", LogLevel.WARNING)
                requeue(s, job, "resuming after a restart")
                out.requeued.append(job.id)
            else:
                _move(job, JobState.FAILED, error=INTERRUPTED)
                note(s, job, f"{INTERRUPTED}: {reason}", LogLevel.ERROR)
                out.failed.append(job.id)
    if out.failed or out.requeued:
        log.warning("interrupted jobs: failed %s, re-queued %s", out.failed, out.requeued)
    return out
