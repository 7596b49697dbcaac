"""The DICOM receiver of a process: C-STORE SCP, spool, and one thread that imports.

Associations are accepted or rejected by the routes (:mod:`.routes`); received
instances go to the spool at once, so a sender never waits for an import. Each complete
batch (one study from one sender, see :class:`~medlabel.io.dimse.Spool`) is imported
into the routed project by :func:`import_batch`, through the same pipeline as uploads
and ``medlabel import`` (:func:`medlabel.services.imports.import_paths`): it is
de-identified, grouped into series, checked for duplicates and recorded with an import
report. Files that could not be imported stay in ``<home>/dicom/quarantine/<batch>/``
with a ``reason.json``; an import either commits whole or stores nothing.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

from medlabel.core.errors import ConfigurationError, MedlabelError
from medlabel.io.dimse import Batch, Peer, Refusal, RejectReason, Spool, StorageSCP
from medlabel.security.audit import Origin, origin_scope
from medlabel.services.context import Context
from medlabel.services.imports import ImportOptions, OnError, import_paths
from medlabel.services.receiver.routes import check_peer, find_route

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOutcome:
    """What became of one received batch."""

    batch_id: str
    called_ae: str
    files: int
    project_id: int | None = None
    import_id: int | None = None
    images: int = 0
    duplicates: int = 0
    #: where files that could not be imported are kept (None: none were)
    quarantine: Path | None = None
    reason: str = ""

    @property
    def imported(self) -> bool:
        return self.import_id is not None


def spool_root(ctx: Context) -> Path:
    """The receiver's folder: ``<home>/dicom`` (spool, ready batches, quarantine)."""
    return ctx.settings.home / "dicom"


def _origin(peer: Peer) -> Origin:
    return Origin(client=f"dicom:{peer.calling_ae}@{peer.host}", operator=f"dicom:{peer.called_ae}")


def import_batch(ctx: Context, spool: Spool, batch: Batch) -> BatchOutcome:
    """Import a complete batch into the project its called AE title routes to.

    Unreadable files are left out and quarantined (the rest is imported); when nothing
    can be imported, or the route is gone, the whole batch is quarantined. Log lines name
    the batch, AE titles, counts and error classes — never values from the files (the
    full reasons are in the quarantine folder's ``reason.json``).
    """
    peer = batch.peer
    route = find_route(ctx, peer.called_ae) if peer.called_ae else None
    if route is None:
        reason = f"no route for called AE title {peer.called_ae!r} when the batch was imported"
        where = spool.quarantine(batch, reason)
        log.warning("DICOM batch %s quarantined in %s: %s", batch.id, where, reason)
        return BatchOutcome(batch.id, peer.called_ae, batch.files, quarantine=where, reason=reason)
    options = ImportOptions(on_error=OnError.SKIP)
    try:
        with origin_scope(_origin(peer)):
            summary = import_paths(ctx, None, route.project_id, batch.paths, options=options)
    except MedlabelError as exc:
        where = spool.quarantine(batch, exc.message)
        log.warning("DICOM batch %s (%d file(s)) for project id=%s not imported (%s, status %d); "
                    "quarantined in %s", batch.id, batch.files, route.project_id,
                    type(exc).__name__, exc.status_code, where)  # fmt: skip
        return BatchOutcome(batch.id, peer.called_ae, batch.files, route.project_id,
                            quarantine=where, reason=exc.message)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - keep the files whatever went wrong
        reason = f"unexpected {type(exc).__name__}: {exc}"
        where = spool.quarantine(batch, reason)
        log.error("DICOM batch %s for project id=%s failed with %s; quarantined in %s",
                  batch.id, route.project_id, type(exc).__name__, where)  # fmt: skip
        return BatchOutcome(batch.id, peer.called_ae, batch.files, route.project_id,
                            quarantine=where, reason=reason)  # fmt: skip
    rejected = [(p.file, p.reason) for p in summary.problems if p.status >= 400]
    kept: Path | None = None
    if rejected:
        kept = spool.quarantine(batch, "some files could not be imported", rejected)
        log.warning("DICOM batch %s: %d file(s) not imported, quarantined in %s",
                    batch.id, len(rejected), kept)  # fmt: skip
    else:
        spool.done(batch)
    counts = summary.counts
    log.info("DICOM batch %s imported into project id=%s: import id=%s, %d image(s), "
             "%d duplicate(s)", batch.id, route.project_id, summary.import_id,
             len(summary.image_ids), counts.get("duplicates", 0))  # fmt: skip
    return BatchOutcome(
        batch.id,
        peer.called_ae,
        batch.files,
        route.project_id,
        summary.import_id,
        images=len(summary.image_ids),
        duplicates=int(counts.get("duplicates", 0)),
        quarantine=kept,
        reason="some files could not be imported" if rejected else "",
    )


class Receiver:
    """Listens for C-STORE, spools, and imports complete batches in one thread.

    Parameters
    ----------
    ctx : Context
        The application context (settings give the defaults below).
    host, port, ae_title, idle_seconds
        Override ``dicom_host`` (else ``host``), ``dicom_port``, ``dicom_ae_title`` and
        ``dicom_idle_seconds``. Port 0 picks a free port (see :attr:`port`).

    Raises
    ------
    ValueError
        When no port is given and ``dicom_port`` is not set.
    """

    def __init__(
        self,
        ctx: Context,
        *,
        host: str | None = None,
        port: int | None = None,
        ae_title: str | None = None,
        idle_seconds: float | None = None,
    ) -> None:
        settings = ctx.settings
        port = settings.dicom_port if port is None else port
        if port is None:
            raise ValueError("no DICOM port: set MEDLABEL_DICOM_PORT or pass --port")
        self.ctx = ctx
        self.spool = Spool(
            spool_root(ctx),
            self._enqueue,
            idle_seconds=settings.dicom_idle_seconds if idle_seconds is None else idle_seconds,
        )
        self.scp = StorageSCP(
            self.spool,
            self._gate,
            ae_title=ae_title or settings.dicom_ae_title,
            host=host or settings.dicom_host or settings.host,
            port=port,
        )
        self.outcomes: collections.deque[BatchOutcome] = collections.deque(maxlen=1000)
        self._done = threading.Condition()
        self._finished = 0
        self._queue: queue.Queue[Batch | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.scp.port

    @property
    def ae_title(self) -> str:
        return self.scp.ae_title

    def start(self) -> None:
        """Import what a previous run left in the spool, then listen.

        Raises
        ------
        ConfigurationError
            When the address cannot be bound (e.g. the port is taken).
        """
        if self._worker is not None:
            return
        for batch in self.spool.recover():
            log.info("DICOM batch %s left by a previous run: importing it", batch.id)
            self._queue.put(batch)
        self._worker = threading.Thread(
            target=self._work, name="medlabel-dicom-import", daemon=True
        )
        self._worker.start()
        self.spool.start()
        try:
            self.scp.start()
        except OSError as exc:
            self.stop()
            raise ConfigurationError(
                f"the DICOM receiver cannot listen on {self.scp.host}:{self.scp.port}: "
                f"{exc.strerror or exc} (choose another MEDLABEL_DICOM_PORT or stop what uses it)"
            ) from exc
        except BaseException:
            self.stop()
            raise

    def stop(self, *, drain: bool = True) -> None:
        """Stop listening; batches still open are completed and, with ``drain``, imported
        before returning (else they stay in the spool for the next start)."""
        self.scp.stop()
        self.spool.stop()
        if drain:
            self.spool.flush()
        worker, self._worker = self._worker, None
        if worker is not None:
            if not drain:  # leave queued batches in ready/ for the next start
                while True:
                    try:
                        self._queue.get_nowait()
                    except queue.Empty:
                        break
            self._queue.put(None)
            worker.join()

    def wait(self, batches: int, timeout: float) -> bool:
        """Wait until ``batches`` batches in all have been imported or quarantined since
        the start (for tests and scripts); False on timeout."""
        with self._done:
            return self._done.wait_for(lambda: self._finished >= batches, timeout)

    # callbacks -----------------------------------------------------------------------------
    def _gate(self, peer: Peer) -> Refusal | None:
        try:
            return check_peer(find_route(self.ctx, peer.called_ae), peer)
        except MedlabelError as exc:
            return Refusal(f"route check failed: {exc.message}", RejectReason.NO_REASON)

    def _enqueue(self, batch: Batch) -> None:
        self._queue.put(batch)

    def _work(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            try:
                outcome = import_batch(self.ctx, self.spool, batch)
            except Exception:
                log.exception("DICOM batch %s could not be handled; it stays in the spool",
                              batch.id)  # fmt: skip
                outcome = BatchOutcome(batch.id, batch.peer.called_ae, batch.files,
                                       reason="could not be handled")  # fmt: skip
            with self._done:
                self.outcomes.append(outcome)
                self._finished += 1
                self._done.notify_all()
