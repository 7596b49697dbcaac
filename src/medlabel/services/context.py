"""The wired-up application: settings, database, blob store and caches."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medlabel.core.cache import TTLCache
from medlabel.core.errors import NotFoundError
from medlabel.core.settings import Settings
from medlabel.security.audit import ImageReadLog
from medlabel.services.volumes import VolumeCache
from medlabel.storage.blob import BlobStore
from medlabel.storage.blob.factory import open_blob_store
from medlabel.storage.db.engine import Database
from medlabel.storage.db.migrate import upgrade

if TYPE_CHECKING:
    from medlabel.engines.registry import EngineRegistry
    from medlabel.jobs.executor import Executor
    from medlabel.jobs.registry import JobKinds
    from medlabel.services.project_engines import ProjectEngines

log = logging.getLogger(__name__)


@dataclass
class Context:
    """Everything a service function needs; built once by :func:`open_context`."""

    settings: Settings
    db: Database
    blobs: BlobStore
    volumes: VolumeCache = field(init=False)
    #: checked tokens → principals; (user, project) → role; image id → facts for slices
    auth_cache: TTLCache[Any] = field(init=False)
    #: coalesces image reads into audit events (one per user, image, kind and window)
    image_reads: ImageReadLog = field(init=False)
    _pool: ProcessPoolExecutor | None = field(init=False, default=None)
    _pool_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _engines: EngineRegistry | None = field(init=False, default=None)
    _engines_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _project_engines: ProjectEngines | None = field(init=False, default=None)
    _job_kinds: JobKinds | None = field(init=False, default=None)
    _executor: Executor | None = field(init=False, default=None)
    _jobs_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _jobs_started: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.volumes = VolumeCache(self.blobs, max_bytes=self.settings.volume_cache_bytes)
        self.auth_cache = TTLCache(seconds=self.settings.auth_cache_seconds)
        self.image_reads = ImageReadLog(
            self.db, window_seconds=self.settings.audit_read_window_seconds
        )

    def forget_access(self) -> None:
        """Drop cached sessions and permissions (after a logout or a role change)."""
        self.auth_cache.clear()

    @property
    def engines(self) -> EngineRegistry:
        """The annotation engines this process offers (the registry is built on first use;
        each engine is built on its first request, see :meth:`preload_engines`)."""
        if self._engines is None:
            with self._engines_lock:
                if self._engines is None:
                    from medlabel.engines.registry import default_registry

                    self._engines = default_registry()
        return self._engines

    @property
    def project_engines(self) -> ProjectEngines:
        """The loaded engines of projects' segmentation models (the ``project-model`` AI
        box), extracted under ``<home>/cache/models`` (created on first use)."""
        if self._project_engines is None:
            with self._engines_lock:
                if self._project_engines is None:
                    from medlabel.services.project_engines import ProjectEngines

                    root = self.settings.home / "cache" / "models"
                    self._project_engines = ProjectEngines(root)
        return self._project_engines

    def preload_engines(self, names: list[str]) -> None:
        """Build the named engines now (e.g. load a model's weights), so the first request
        does not wait; an engine that is unknown, lacks its optional extra or fails to load
        is logged and skipped."""
        for name in names:
            try:
                if not self.engines.available(name):
                    log.info("not preloading engine %s: its optional extra is not installed", name)
                    continue
                self.engines.get(name)
            except NotFoundError as exc:
                log.warning("not preloading engine %s: %s", name, exc.message)
            except Exception:
                log.exception("could not preload engine %s", name)
            else:
                log.info("preloaded engine %s", name)

    @property
    def job_kinds(self) -> JobKinds:
        """The job kinds this process can run (tests and plugins may register more
        before :meth:`start_jobs`)."""
        if self._job_kinds is None:
            with self._jobs_lock:
                if self._job_kinds is None:
                    from medlabel.jobs.registry import default_kinds

                    self._job_kinds = default_kinds()
        return self._job_kinds

    @property
    def executor(self) -> Executor:
        """Where submitted jobs run (created on first use): the Ray cluster at
        ``settings.ray_address`` if set, else threads of this process."""
        if self._executor is None:
            with self._jobs_lock:
                if self._executor is None:
                    if self.settings.ray_address:
                        from medlabel.jobs.ray_executor import RayExecutor

                        self._executor = RayExecutor(self)
                    else:
                        from medlabel.jobs.local import LocalExecutor

                        self._executor = LocalExecutor(self, workers=self.settings.job_workers)
        return self._executor

    def start_jobs(self) -> None:
        """Run background jobs in this process: settle jobs a dead process left running,
        pick up queued ones (done by the server at start-up; idempotent)."""
        self.executor.start()
        self._jobs_started = True

    def offer_job(self, job_id: int) -> None:
        """Hand a queued job to this process's executor if this process runs jobs (a
        server); otherwise (the CLI) it waits in the queue for a server to take it."""
        if self._jobs_started and self._executor is not None:
            self._executor.submit(job_id)

    def notify_cancel(self, job_id: int) -> None:
        """Tell this process's executor, if it has one, to stop a job now."""
        if self._executor is not None:
            self._executor.cancel(job_id)

    def jobs_problem(self) -> str | None:
        """Why this process cannot run background jobs now, or None when it can (for the
        readiness check). An executor may offer ``health() -> str | None`` (e.g. whether
        its cluster answers)."""
        if not self._jobs_started or self._executor is None:
            return "the job executor is not started"
        check = getattr(self._executor, "health", None)
        return check() if callable(check) else None

    @property
    def import_workers(self) -> int:
        """How many import worker processes :meth:`process_pool` runs (1: none)."""
        return self.settings.import_workers or min(4, os.cpu_count() or 1)

    def process_pool(self) -> ProcessPoolExecutor | None:
        """Worker processes for CPU-bound import work, started on first use and kept
        (None when ``import_workers`` is 1 or the machine has one core)."""
        workers = self.import_workers
        if workers <= 1:
            return None
        with self._pool_lock:
            if self._pool is None:
                from medlabel.services.imports.worker import warm_up

                mp = multiprocessing.get_context("forkserver")
                mp.set_forkserver_preload(["medlabel.services.imports.worker"])
                self._pool = ProcessPoolExecutor(
                    max_workers=workers, mp_context=mp, initializer=warm_up
                )
            return self._pool

    def prestart_process_pool(self) -> None:
        """Start the worker processes now, in the background, so the first large import
        does not wait for them."""
        pool = self.process_pool()
        if pool is not None:
            for _ in range(self.import_workers):
                pool.submit(int)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
            self._jobs_started = False
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._project_engines is not None:
            self._project_engines.clear()
        self.db.dispose()


def open_context(settings: Settings, *, migrate: bool = True) -> Context:
    """Create the data folders, open the database (migrating it to the newest schema)
    and the blob store."""
    settings.home.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    db = Database(
        settings.resolved_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    if migrate:
        upgrade(db.engine)
    blobs = open_blob_store(settings)
    log.debug("opened medlabel home %s", settings.home)
    return Context(settings=settings, db=db, blobs=blobs)
