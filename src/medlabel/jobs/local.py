"""The in-process executor: a few daemon threads of this process run jobs."""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING

from medlabel.jobs import store
from medlabel.jobs.runner import run_job, running_here

if TYPE_CHECKING:
    from medlabel.services.context import Context

log = logging.getLogger(__name__)

_STOP = -1


class LocalExecutor:
    """Runs jobs in ``workers`` threads of this process.

    Cancellation is cooperative: :meth:`cancel` sets the job's event, which its
    reporter reports as cancelled at the job's next check. A monitor thread repeats
    :meth:`recover` every ``stale_seconds / 4`` so jobs of processes that died while
    this one runs are settled too, and queued jobs nobody took are run.

    Threads are daemons: a job that never checks for cancellation cannot hold the
    process open; its row stays ``running`` and the next start settles it.
    """

    def __init__(self, ctx: Context, *, workers: int = 1, grace_seconds: float = 10.0) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._ctx = ctx
        self._workers = workers
        self._grace = grace_seconds
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._lock = threading.Lock()
        #: job id -> its cancel event, for jobs submitted here and not yet finished
        self._events: dict[int, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self._started = False

    # -- Executor ---------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._started or self._stopping.is_set():
                return
            self._started = True
        self.recover()
        self._monitor = threading.Thread(
            target=self._watch, name="medlabel-jobs-monitor", daemon=True
        )
        self._monitor.start()

    def submit(self, job_id: int) -> None:
        with self._lock:
            if self._stopping.is_set():
                log.info("job %s stays queued: the executor is shutting down", job_id)
                return
            if job_id in self._events:  # already waiting or running here
                return
            self._events[job_id] = threading.Event()
            if len(self._threads) < self._workers:
                t = threading.Thread(
                    target=self._work, name=f"medlabel-job-worker-{len(self._threads)}", daemon=True
                )
                self._threads.append(t)
                t.start()
        self._queue.put(job_id)

    def cancel(self, job_id: int) -> None:
        with self._lock:
            event = self._events.get(job_id)
        if event is not None:
            event.set()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
            events = list(self._events.values())
            threads = list(self._threads)
        for event in events:
            event.set()
        for _ in threads:
            self._queue.put(_STOP)
        if wait:
            for t in threads:
                t.join(self._grace)
                if t.is_alive():
                    log.warning(
                        "a job did not stop in %.0f s; recovery will settle it", self._grace
                    )
                    break
        if self._monitor is not None:
            self._monitor.join(1.0)

    def health(self) -> str | None:
        """None while this executor takes jobs, else why not (the readiness check)."""
        if self._stopping.is_set():
            return "the job executor is shutting down"
        if self._monitor is not None and not self._monitor.is_alive():
            return "the job executor's monitor thread has stopped"
        return None

    # -- recovery ---------------------------------------------------------------------

    def recover(self) -> store.Recovery:
        """Settle jobs left running by dead processes, then submit every queued job."""
        settings = self._ctx.settings
        done = store.recover(
            self._ctx.db,
            self._ctx.job_kinds,
            stale_seconds=settings.job_stale_seconds,
            running_here=running_here,
        )
        for job_id in store.queued_ids(self._ctx.db):
            self.submit(job_id)
        return done

    def pending(self) -> set[int]:
        """Ids of the jobs queued in or running on this executor."""
        with self._lock:
            return set(self._events)

    # -- threads ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id == _STOP or self._stopping.is_set():
                return
            with self._lock:
                event = self._events.get(job_id) or threading.Event()
            try:
                run_job(self._ctx, job_id, cancel_event=event, stopping=self._stopping)
            except BaseException:
                log.exception("job %s: the runner failed", job_id)
            finally:
                with self._lock:
                    self._events.pop(job_id, None)

    def _watch(self) -> None:
        interval = max(1.0, self._ctx.settings.job_stale_seconds / 4)
        while not self._stopping.wait(interval):
            try:
                self.recover()
            except Exception:
                log.warning("job recovery failed; retrying in %.0f s", interval, exc_info=True)
