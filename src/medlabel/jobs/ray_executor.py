"""The Ray executor: jobs run as tasks on a Ray cluster, batches on its actors.

Chosen by :attr:`medlabel.services.context.Context.executor` when
``settings.ray_address`` (``MEDLABEL_RAY_ADDRESS``) is set. Nothing about a job changes:

- A job is a Ray task that opens a :class:`~medlabel.services.context.Context` of its
  worker process from the server's :class:`~medlabel.core.settings.Settings` (kept per
  worker process and reused) and calls the same :func:`medlabel.jobs.runner.run_job`.
  The database and the blob store must therefore be reachable from every node: SQLite
  and a blob folder work on one machine; a cluster of several machines needs
  PostgreSQL (``MEDLABEL_DATABASE_URL``) and S3 (``MEDLABEL_BLOB_URL``).
- Progress, logs, heartbeats and the cancel flag go through the job's row, as for jobs
  of another process. :meth:`RayExecutor.cancel` also drops jobs that have not started
  (``ray.cancel`` for a task still waiting for a slot).
- :meth:`~medlabel.jobs.spec.JobEnv.map_batches` inside such a job spreads batches over
  actors (one CPU each), each building its worker (loading its model) once.
- At most ``max_jobs`` (``MEDLABEL_JOB_WORKERS``) jobs of this server are on the cluster
  at a time; the rest wait here, queued. A task is never retried by Ray: a job whose
  worker died is settled by recovery (its process is gone, or its heartbeat is stale)
  like a job of a dead server.
- On shutdown, jobs still running are settled like the local executor's ("interrupted by
  a shutdown", re-queued if resumable): Ray ends the tasks of a driver that leaves.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from medlabel.core.errors import ConfigurationError
from medlabel.core.optional import require
from medlabel.jobs import store
from medlabel.jobs.batches import BatchRun, WorkerFactory, check_results, close_worker, split
from medlabel.jobs.reporter import JobCancelled, LogLevel
from medlabel.jobs.runner import run_job, running_here
from medlabel.jobs.state import JobState
from medlabel.storage.db.models import Job

if TYPE_CHECKING:
    from medlabel.core.settings import Settings
    from medlabel.jobs.registry import JobKinds
    from medlabel.services.context import Context

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: the error of a running job whose server shut down
SHUTDOWN = "interrupted by a shutdown"
#: batches in flight per actor (one running, one waiting: no idle gap between batches)
IN_FLIGHT = 2


def ray_module() -> ModuleType:
    """The ``ray`` package, or a :class:`~medlabel.core.errors.MissingDependencyError`
    naming the ``ray`` extra."""
    return require("ray", extra="ray", feature="running jobs on a Ray cluster")


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a Ray address, None for ``auto`` / ``local``.

    Examples
    --------
    >>> _host_port("ray://10.0.0.5:10001"), _host_port("127.0.0.1:6380"), _host_port("auto")
    (('10.0.0.5', 10001), ('127.0.0.1', 6380), None)
    """
    rest = address.split("://", 1)[1] if "://" in address else address
    if rest in ("auto", "local", ""):
        return None
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigurationError(
            f"MEDLABEL_RAY_ADDRESS {address!r} is not host:port (e.g. 127.0.0.1:6380 or "
            "ray://head:10001)"
        )
    return host.strip("[]"), int(port)


def connect(address: str, *, timeout: float = 5.0) -> bool:
    """Connect this process to the Ray cluster at ``address`` (True) unless it already is
    connected (False).

    Raises
    ------
    MissingDependencyError
        ``ray`` is not installed.
    ConfigurationError
        Nothing answers at the address, or Ray refused to connect.
    """
    ray = ray_module()
    if ray.is_initialized():
        return False
    target = _host_port(address)
    if target is not None:
        try:
            socket.create_connection(target, timeout=timeout).close()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot reach the Ray cluster at {address} ({exc}): start it (`ray start "
                "--head`) or fix MEDLABEL_RAY_ADDRESS"
            ) from None
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot connect to the Ray cluster at {address}: {exc}; check "
            "MEDLABEL_RAY_ADDRESS and that the cluster runs the same Ray and Python versions"
        ) from None
    return True


# -- the worker side (runs in Ray worker processes) -------------------------------------

_worker_lock = threading.Lock()
#: settings (as JSON) -> the Context of this worker process for them, opened on first use
#: (a Ray worker process runs many tasks; each reuses the database pool)
_worker_contexts: dict[str, Context] = {}


def worker_context(settings: Settings, kinds: JobKinds) -> Context:
    """The Context of this (worker) process for ``settings``, with the server's job
    kinds."""
    from medlabel.services.context import open_context

    key = settings.model_dump_json()
    with _worker_lock:
        ctx = _worker_contexts.get(key)
        if ctx is None:
            ctx = open_context(settings, migrate=False)
            _worker_contexts[key] = ctx
        ctx._job_kinds = kinds  # the server's registry (plugins and tests add kinds)
    return ctx


def _run_remote(
    settings: Settings, kinds: JobKinds, job_id: int, batch_workers: int | None
) -> str | None:
    """A job's Ray task: one attempt of ``job_id`` with this worker's Context."""
    ctx = worker_context(settings, kinds)
    mapper = RayMapper(settings, kinds, workers=batch_workers)
    state = run_job(ctx, job_id, mapper=mapper)
    return None if state is None else state.value


class _BatchActor:
    """Holds one built worker (e.g. a loaded model) and runs batches through it."""

    def __init__(self, settings: Settings, kinds: JobKinds, factory: WorkerFactory[Any, Any]):
        self._worker = factory(worker_context(settings, kinds))

    def run(self, batch: list[Any]) -> list[Any]:
        return check_results(batch, self._worker(batch))

    def close(self) -> None:
        close_worker(self._worker)


_remote_lock = threading.Lock()
_remote: dict[str, Any] = {}


def _remotes() -> tuple[Any, Any]:
    """The Ray remote function and actor class (made on first use: ray is optional)."""
    with _remote_lock:
        if not _remote:
            ray = ray_module()
            _remote["task"] = ray.remote(max_retries=0)(_run_remote)
            _remote["actor"] = ray.remote(max_restarts=0)(_BatchActor)
        return _remote["task"], _remote["actor"]


def _unwrap(exc: BaseException) -> BaseException:
    """The error raised in a worker, out of Ray's wrapper."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    return exc


class _RayRun(BatchRun[T, R]):
    def __init__(
        self,
        settings: Settings,
        kinds: JobKinds,
        factory: WorkerFactory[T, R],
        batches: list[list[T]],
        workers: int,
        cancelled: Callable[[], bool] | None,
    ) -> None:
        self._settings = settings
        self._kinds = kinds
        self._factory = factory
        self._batches = batches
        self._workers = max(1, min(workers, len(batches)))
        self._cancelled = cancelled
        self._actors: list[Any] = []

    def __iter__(self) -> Iterator[tuple[T, R]]:
        if not self._batches:
            return
        ray = ray_module()
        _, actor_class = _remotes()
        kinds_ref = ray.put(self._kinds)
        self._actors = [
            actor_class.options(num_cpus=1).remote(self._settings, kinds_ref, self._factory)
            for _ in range(self._workers)
        ]
        waiting = collections.deque(range(len(self._batches)))
        flight: dict[Any, tuple[int, int]] = {}  # ref -> (actor, batch)

        def feed(actor: int) -> None:
            if waiting:
                b = waiting.popleft()
                flight[self._actors[actor].run.remote(self._batches[b])] = (actor, b)

        for _ in range(IN_FLIGHT):
            for a in range(len(self._actors)):
                feed(a)
        while flight:
            ready, _ = ray.wait(list(flight), num_returns=1, timeout=0.25)
            if self._cancelled is not None and self._cancelled():
                raise JobCancelled()
            for ref in ready:
                actor, b = flight.pop(ref)
                try:
                    results = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    raise RuntimeError(f"a batch worker died: {_unwrap(exc)}") from None
                except ray.exceptions.RayTaskError as exc:
                    raise _unwrap(exc) from None
                feed(actor)
                yield from zip(self._batches[b], results, strict=True)

    def close(self) -> None:
        actors, self._actors = self._actors, []
        if not actors:
            return
        ray = ray_module()
        done = [a.close.remote() for a in actors]
        try:
            ray.wait(done, num_returns=len(done), timeout=10.0)
        except Exception:  # a dead actor cannot close: nothing to clean up then
            log.debug("closing batch workers failed", exc_info=True)
        for a in actors:
            ray.kill(a, no_restart=True)


class RayMapper:
    """Batches on Ray actors: ``workers`` of them (default: the cluster's CPUs), each
    with one CPU and its own built worker."""

    def __init__(self, settings: Settings, kinds: JobKinds, *, workers: int | None = None):
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.settings = settings
        self.kinds = kinds
        self.workers = workers

    def map_batches(
        self,
        ctx: Context,
        factory: WorkerFactory[T, R],
        items: Sequence[T],
        *,
        batch_size: int,
        cancelled: Callable[[], bool] | None = None,
    ) -> BatchRun[T, R]:
        workers = self.workers
        if workers is None:
            workers = max(1, int(ray_module().cluster_resources().get("CPU", 1)))
        return _RayRun(
            self.settings, self.kinds, factory, split(items, batch_size), workers, cancelled
        )


# -- the server side ----------------------------------------------------------------------


class RayExecutor:
    """Runs jobs as Ray tasks on the cluster at ``address``.

    Parameters
    ----------
    ctx
        The server's context (its settings are sent to the workers).
    address
        Default: ``ctx.settings.ray_address``.
    max_jobs
        Jobs of this server on the cluster at once (default ``settings.job_workers``).
    batch_workers
        Actors per :meth:`~medlabel.jobs.spec.JobEnv.map_batches` (default: the
        cluster's CPUs).
    job_cpus
        CPUs a job's task reserves (it gives them back while it waits for batches).
    grace_seconds
        How long :meth:`shutdown` waits for interrupted jobs to stop.

    Raises
    ------
    MissingDependencyError
        ``ray`` is not installed (the ``ray`` extra).
    """

    def __init__(
        self,
        ctx: Context,
        *,
        address: str | None = None,
        max_jobs: int | None = None,
        batch_workers: int | None = None,
        job_cpus: float = 1.0,
        grace_seconds: float = 10.0,
    ) -> None:
        ray_module()
        address = address or ctx.settings.ray_address
        if not address:
            raise ConfigurationError("the Ray executor needs MEDLABEL_RAY_ADDRESS")
        _host_port(address)  # a malformed address fails now
        self._ctx = ctx
        self.address = address
        self._max_jobs = max_jobs or ctx.settings.job_workers
        if self._max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, got {self._max_jobs}")
        self._batch_workers = batch_workers
        self._job_cpus = job_cpus
        self._grace = grace_seconds
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._waiting: collections.deque[int] = collections.deque()
        #: job id -> its task's ObjectRef, for jobs handed to the cluster and not over
        self._tasks: dict[int, Any] = {}
        self._kinds_ref: Any = None
        self._connected = False
        self._started = False
        self._thread: threading.Thread | None = None

    # -- Executor ---------------------------------------------------------------------

    def start(self) -> None:
        """Connect to the cluster, settle interrupted jobs, hand queued ones over.

        Raises
        ------
        ConfigurationError
            The cluster cannot be reached.
        """
        with self._lock:
            if self._started or self._stopping.is_set():
                return
            self._connected = connect(self.address)
            self._kinds_ref = ray_module().put(self._ctx.job_kinds)
            self._started = True
        log.info("running jobs on the Ray cluster at %s", self.address)
        self.recover()
        self._thread = threading.Thread(
            target=self._dispatch, name="medlabel-ray-jobs", daemon=True
        )
        self._thread.start()

    def submit(self, job_id: int) -> None:
        with self._lock:
            if self._stopping.is_set():
                log.info("job %s stays queued: the executor is shutting down", job_id)
                return
            if job_id in self._tasks or job_id in self._waiting:
                return
            self._waiting.append(job_id)
        self._wake.set()

    def cancel(self, job_id: int) -> None:
        """Forget a job that waits here; ``ray.cancel`` a task that has not claimed its
        job yet. A running job stops through its cancel flag (within a heartbeat)."""
        with self._lock:
            if job_id in self._waiting:
                self._waiting.remove(job_id)
                return
            ref = self._tasks.get(job_id)
        if ref is None:
            return
        with self._ctx.db.read() as s:
            job = s.get(Job, job_id)
            started = job is not None and job.state == JobState.RUNNING.value
        if not started:
            ray_module().cancel(ref, force=False)

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
            self._waiting.clear()
            tasks = dict(self._tasks)
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if tasks:
            ray = ray_module()
            for job_id, ref in tasks.items():
                if not self._settle(job_id):
                    ray.cancel(ref, force=False)  # not started: it stays queued here
            if wait:
                ray.wait(list(tasks.values()), num_returns=len(tasks), timeout=self._grace)
        if self._connected:
            ray_module().shutdown()
            self._connected = False

    # -- recovery ---------------------------------------------------------------------

    def recover(self) -> store.Recovery:
        """Settle jobs left running by dead processes (a worker on this host whose
        process is gone, or any whose heartbeat is stale), then submit every queued
        job."""
        done = store.recover(
            self._ctx.db,
            self._ctx.job_kinds,
            stale_seconds=self._ctx.settings.job_stale_seconds,
            running_here=running_here,
        )
        for job_id in store.queued_ids(self._ctx.db):
            self.submit(job_id)
        return done

    def pending(self) -> set[int]:
        """Ids of the jobs waiting here or handed to the cluster."""
        with self._lock:
            return set(self._waiting) | set(self._tasks)

    # -- internals --------------------------------------------------------------------

    def _settle(self, job_id: int) -> bool:
        """End a running job of this executor as interrupted by a shutdown (re-queued
        when its kind is resumable); False if it had not started."""
        kinds = self._ctx.job_kinds
        with self._ctx.db.write() as s:
            job = store.lock_job(s, job_id)
            if job is None or job.state != JobState.RUNNING.value:
                return job is not None and job.state != JobState.QUEUED.value
            kind = kinds.get(job.kind) if job.kind in kinds else None
            if kind is not None and kind.resumable and job.attempt < kind.max_attempts:
                store.note(s, job, SHUTDOWN, LogLevel.WARNING)
                store.requeue(s, job, "resuming after a shutdown")
                return True
            attempt = job.attempt
        store.finish(
            self._ctx.db,
            job_id,
            attempt,
            JobState.FAILED,
            error=SHUTDOWN,
            line=SHUTDOWN,
            level=LogLevel.ERROR,
        )
        return True

    def _launch(self) -> None:
        task, _ = _remotes()
        with self._lock:
            while self._waiting and len(self._tasks) < self._max_jobs:
                job_id = self._waiting.popleft()
                self._tasks[job_id] = task.options(num_cpus=self._job_cpus).remote(
                    self._ctx.settings, self._kinds_ref, job_id, self._batch_workers
                )

    def _reap(self, timeout: float) -> None:
        ray = ray_module()
        with self._lock:
            refs = {ref: job_id for job_id, ref in self._tasks.items()}
        if not refs:
            self._wake.wait(timeout)
            self._wake.clear()
            return
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        for ref in ready:
            job_id = refs[ref]
            try:
                state = ray.get(ref)
                log.debug("job %s ended on the cluster: %s", job_id, state)
            except ray.exceptions.TaskCancelledError:
                log.info("job %s: its task was cancelled before it started", job_id)
            except Exception:
                log.error("job %s: its Ray task failed", job_id, exc_info=True)
            with self._lock:
                self._tasks.pop(job_id, None)

    def _dispatch(self) -> None:
        interval = max(1.0, self._ctx.settings.job_stale_seconds / 4)
        next_recovery = time.monotonic() + interval
        while not self._stopping.is_set():
            try:
                self._launch()
                self._reap(0.2)
                if time.monotonic() >= next_recovery:
                    next_recovery = time.monotonic() + interval
                    self.recover()
            except Exception:
                if self._stopping.is_set():
                    return
                log.warning("the Ray job dispatcher failed; retrying", exc_info=True)
                self._stopping.wait(1.0)
