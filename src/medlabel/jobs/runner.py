"""Running one job attempt in this process: claim, run the kind's function, record the
outcome. Every executor (the in-process one, the CLI's foreground run, later Ray)
calls :func:`run_job`; the job's code never sees the executor."""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from medlabel.core.errors import MedlabelError
from medlabel.core.logs import log_context
from medlabel.jobs import store
from medlabel.jobs.reporter import DbReporter, JobCancelled, LogLevel
from medlabel.jobs.spec import JobEnv, JobInfo
from medlabel.jobs.state import JobState
from medlabel.storage.db.models import Job

if TYPE_CHECKING:
    from medlabel.jobs.batches import BatchMapper
    from medlabel.services.context import Context

log = logging.getLogger(__name__)

_here_lock = threading.Lock()
#: ids of the jobs a runner of this process is running right now. Not job state (the
#: database holds that): only "is this process still working on it", which dies with
#: the process by design; recovery uses it to tell live jobs of this process from
#: orphans left by an earlier Context in the same process.
_running_here: set[int] = set()


def running_here() -> frozenset[int]:
    with _here_lock:
        return frozenset(_running_here)


@contextmanager
def _registered(job_id: int) -> Iterator[None]:
    with _here_lock:
        _running_here.add(job_id)
    try:
        yield
    finally:
        with _here_lock:
            _running_here.discard(job_id)


class _Heartbeat:
    """Flushes the reporter every few seconds while the job runs (heartbeat, cancel
    flag, progress the job reported since the last write)."""

    def __init__(self, reporter: DbReporter, seconds: float) -> None:
        self._reporter = reporter
        self._seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"medlabel-job-{reporter.job_id}-heartbeat", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._seconds):
            try:
                self._reporter.flush()
            except Exception:
                log.warning("job %s: heartbeat failed", self._reporter.job_id, exc_info=True)


def error_message(exc: BaseException) -> str:
    """The one line a user sees for a failure (the traceback goes to the job's log)."""
    if isinstance(exc, MedlabelError):
        return exc.message
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:1000] if text else type(exc).__name__


def run_job(
    ctx: Context,
    job_id: int,
    *,
    cancel_event: threading.Event | None = None,
    stopping: threading.Event | None = None,
    claimed: bool = False,
    min_interval: float = 0.5,
    mapper: BatchMapper | None = None,
) -> JobState | None:
    """Run one attempt of a job in this thread and record how it ended.

    Parameters
    ----------
    ctx
        The context of this process (the job's function gets it).
    job_id
        A queued job, or with ``claimed`` one this process already marked running.
    cancel_event
        Set by the executor to stop the job (also set when its cancel flag is seen).
    stopping
        Set while the executor shuts down: a job stopped by it is re-queued (resumable
        kinds) or failed as interrupted, not marked cancelled.
    min_interval
        Seconds between progress writes.
    mapper
        Where the job's :meth:`~medlabel.jobs.spec.JobEnv.map_batches` runs batches
        (None: inline, in this thread).

    Returns
    -------
    JobState or None
        The state the job ended in; None if it was not ours to run (already taken,
        cancelled, deleted) or was taken away while running.
    """
    worker = store.worker_id()
    event = cancel_event or threading.Event()
    with _registered(job_id), log_context(job_id=job_id):  # job_id on its log records
        if claimed:
            with ctx.db.read() as s:
                row = s.get(Job, job_id)
                if row is None or row.state != JobState.RUNNING.value or row.worker != worker:
                    return None
                info = store.info_of(row)
        else:
            claimed_info = store.claim(ctx.db, job_id, worker)
            if claimed_info is None:
                return None
            info = claimed_info
        reporter = DbReporter(
            ctx.db, job_id, info.attempt, cancel_event=event, min_interval=min_interval
        )
        with _Heartbeat(reporter, ctx.settings.job_heartbeat_seconds):
            outcome = _attempt(ctx, info, reporter, mapper)
        state, result, error, line, level = outcome
        try:
            reporter.flush()  # (also reads whether a user asked for the cancellation)
        except Exception:
            log.warning("job %s: could not write its last log lines", job_id, exc_info=True)
        if reporter.lost:
            return None
        shutdown = stopping is not None and stopping.is_set() and not reporter.cancel_requested
        if state == JobState.CANCELLED and shutdown:  # stopped by a shutdown, not by a user
            state, error, line, level = _interrupted(ctx, info)
        if state == JobState.QUEUED:
            with ctx.db.write() as s:
                job = store.lock_job(s, job_id)
                if (
                    job is None
                    or job.state != JobState.RUNNING.value
                    or job.attempt != info.attempt
                ):
                    return None
                store.note(s, job, line, level)
                store.requeue(s, job, "resuming after a shutdown")
            return state
        if not store.finish(
            ctx.db, job_id, info.attempt, state, result=result, error=error, line=line, level=level
        ):
            return None
        log.info("job %s (%s) %s", job_id, info.kind, state.value)
        return state


_Outcome = tuple[JobState, "dict[str, Any] | None", "str | None", str, LogLevel]


def _attempt(
    ctx: Context, info: JobInfo, reporter: DbReporter, mapper: BatchMapper | None = None
) -> _Outcome:
    try:
        kind = ctx.job_kinds.get(info.kind)
        params = kind.parse(info.params)
        reporter.check_cancelled()
        env = JobEnv(ctx=ctx, job=info, mapper=mapper)
        result = kind.run(env, params, reporter) or {}
        if not isinstance(result, dict):
            raise TypeError(f"a job's result must be a dict, not {type(result).__name__}")
        json.dumps(result)  # must be storable
    except JobCancelled:
        return JobState.CANCELLED, None, None, "cancelled", LogLevel.WARNING
    except Exception as exc:
        message = error_message(exc)
        if not isinstance(exc, MedlabelError):
            log.error("job %s (%s) failed", info.id, info.kind, exc_info=exc)
            reporter.log(traceback.format_exc(), LogLevel.ERROR)
        return JobState.FAILED, None, message, f"failed: {message}", LogLevel.ERROR
    except BaseException as exc:  # KeyboardInterrupt (a cancel), SystemExit: record, re-raise
        ctrl_c = isinstance(exc, KeyboardInterrupt)
        try:
            reporter.flush()
        finally:
            store.finish(
                ctx.db,
                info.id,
                info.attempt,
                JobState.CANCELLED if ctrl_c else JobState.FAILED,
                error=None if ctrl_c else f"interrupted ({type(exc).__name__})",
                line=f"interrupted ({type(exc).__name__})",
                level=LogLevel.WARNING,
            )
        raise
    return JobState.SUCCEEDED, result, None, "succeeded", LogLevel.INFO


def _interrupted(ctx: Context, info: JobInfo) -> tuple[JobState, str | None, str, LogLevel]:
    kind = ctx.job_kinds.get(info.kind) if info.kind in ctx.job_kinds else None
    if kind is not None and kind.resumable and info.attempt < kind.max_attempts:
        return JobState.QUEUED, None, "interrupted by a shutdown", LogLevel.WARNING
    reason = "interrupted by a shutdown"
    return JobState.FAILED, reason, reason, LogLevel.ERROR
