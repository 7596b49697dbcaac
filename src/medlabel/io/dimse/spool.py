"""A spool folder for received DICOM instances, grouped into batches.

Layout under the spool's root (all folders mode 0700)::

    incoming/<batch id>/batch.json, 000001.dcm, ...   still receiving
    ready/<batch id>/...                               complete, waiting for the importer
    quarantine/<batch id>/reason.json, *.dcm           kept after a failed import

A batch holds the instances of one study sent by one peer (calling AE title and host) to
one called AE title. It becomes *ready* when every association that delivered into it
has ended, or when nothing arrived for it for ``idle_seconds`` (a sender may keep its
association open for hours). Instances of the same study that arrive later start a new
batch. Names on disk are counters and batch ids, never identifiers from the data (the
files themselves are the originals, so the folder must stay private).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_BATCH_FILE = "batch.json"
_REASON_FILE = "reason.json"


@dataclass(frozen=True)
class Peer:
    """Who sent: the AE titles of an association and the sender's address."""

    called_ae: str
    calling_ae: str
    host: str
    port: int = 0

    def describe(self) -> str:
        """``CALLING@host -> CALLED`` for log lines (no patient data)."""
        return f"{self.calling_ae}@{self.host} -> {self.called_ae}"


@dataclass(frozen=True)
class Batch:
    """A complete group of received files, waiting in ``folder`` to be imported."""

    id: str
    folder: Path
    peer: Peer
    files: int

    @property
    def paths(self) -> list[Path]:
        """The received files, in arrival order."""
        return sorted(self.folder.glob("*.dcm"))


@dataclass
class _Open:
    id: str
    folder: Path
    peer: Peer
    files: int = 0
    seq: int = 0  # names the next file (never reused, even after a failed write)
    pending: int = 0  # files being written
    last: float = field(default_factory=time.monotonic)
    associations: set[int] = field(default_factory=set)


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _new_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:10]


class Spool:
    """Received files on disk, grouped into batches that are handed to ``on_ready``.

    Parameters
    ----------
    root : Path
        The spool folder (created, mode 0700).
    on_ready : callable
        Called with each :class:`Batch` once it is complete, from the thread that
        completed it (an association's or the idle checker's): it must return quickly.
    idle_seconds : float
        A batch whose association stays open is complete after this many seconds
        without a new instance.

    Raises
    ------
    ValueError
        When ``idle_seconds`` is not positive.
    """

    def __init__(
        self, root: Path, on_ready: Callable[[Batch], None], *, idle_seconds: float = 30.0
    ) -> None:
        if not idle_seconds > 0:
            raise ValueError(f"idle_seconds must be positive, got {idle_seconds}")
        self.root = _private_dir(root)
        self.incoming = _private_dir(root / "incoming")
        self.ready_dir = _private_dir(root / "ready")
        self.quarantine_dir = _private_dir(root / "quarantine")
        self.on_ready = on_ready
        self.idle_seconds = float(idle_seconds)
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str, str, str], _Open] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # receiving ---------------------------------------------------------------------------
    def add(self, association: int, peer: Peer, study_uid: str, data: bytes) -> None:
        """Store one received instance (a DICOM file's bytes) of ``study_uid``.

        Raises
        ------
        OSError
            When the file cannot be written (e.g. the disk is full).
        """
        key = (peer.called_ae, peer.calling_ae, peer.host, study_uid)
        with self._lock:
            batch = self._open.get(key)
            if batch is None:
                batch = self._create(peer)
                self._open[key] = batch
            batch.files += 1
            batch.seq += 1
            batch.pending += 1
            batch.last = time.monotonic()
            batch.associations.add(association)
            number = batch.seq
        path = batch.folder / f"{number:06d}.dcm"
        part = path.with_suffix(".part")
        try:
            part.write_bytes(data)
            os.replace(part, path)
        except OSError:
            with self._lock:
                batch.files -= 1
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)
            raise
        finally:
            with self._lock:
                batch.pending -= 1
                done = self._complete(key, batch)
            if done is not None:
                self._hand_over(done)

    def ended(self, association: int) -> None:
        """An association ended (released, aborted or dropped): its batches are complete
        unless another open association also delivers into them."""
        finished = []
        with self._lock:
            for key, batch in list(self._open.items()):
                if association in batch.associations:
                    batch.associations.discard(association)
                    done = self._complete(key, batch)
                    if done is not None:
                        finished.append(done)
        for done in finished:
            self._hand_over(done)

    def flush(self) -> None:
        """Treat every open batch as complete (at shutdown)."""
        with self._lock:
            finished = [self._take(key, b) for key, b in list(self._open.items()) if b.pending == 0]
        for done in finished:
            if done is not None:
                self._hand_over(done)

    def _create(self, peer: Peer) -> _Open:
        batch_id = _new_id()
        folder = _private_dir(self.incoming / batch_id)
        meta = {"peer": asdict(peer), "received": _now()}
        (folder / _BATCH_FILE).write_text(json.dumps(meta))
        return _Open(batch_id, folder, peer)

    def _complete(self, key: tuple[str, str, str, str], batch: _Open) -> Batch | None:
        """(Lock held.) The batch, moved to ready/, if nothing more can arrive for it."""
        if batch.associations or batch.pending:
            return None
        return self._take(key, batch)

    def _take(self, key: tuple[str, str, str, str], batch: _Open) -> Batch | None:
        """(Lock held.) Close the batch and move it to ready/ (None if it holds nothing)."""
        if self._open.get(key) is not batch:
            return None
        del self._open[key]
        if batch.files == 0:
            shutil.rmtree(batch.folder, ignore_errors=True)
            return None
        target = self.ready_dir / batch.id
        os.replace(batch.folder, target)
        return Batch(batch.id, target, batch.peer, batch.files)

    def _hand_over(self, batch: Batch) -> None:
        log.info("DICOM batch %s complete: %d instance(s) from %s", batch.id, batch.files,
                 batch.peer.describe())  # fmt: skip
        try:
            self.on_ready(batch)
        except Exception:
            log.exception("DICOM batch %s: the importer did not take it; it stays in %s",
                          batch.id, self.ready_dir)  # fmt: skip

    # idle timeout --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread that completes batches idle for ``idle_seconds``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, name="medlabel-dicom-spool", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the idle checker (open batches stay open; see :meth:`flush`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _watch(self) -> None:
        period = min(1.0, self.idle_seconds / 4)
        while not self._stop.wait(period):
            self.check_idle()

    def check_idle(self, now: float | None = None) -> int:
        """Complete the batches idle for ``idle_seconds``; returns how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            finished = [
                self._take(key, b)
                for key, b in list(self._open.items())
                if b.pending == 0 and now - b.last >= self.idle_seconds
            ]
        done = [b for b in finished if b is not None]
        for batch in done:
            self._hand_over(batch)
        return len(done)

    # after the import ----------------------------------------------------------------------
    def recover(self) -> list[Batch]:
        """Batches a previous process left (received, not yet imported), moved to ready/,
        oldest first. Call before receiving."""
        for folder in sorted(p for p in self.incoming.iterdir() if p.is_dir()):
            for part in folder.glob("*.part"):
                part.unlink(missing_ok=True)
            os.replace(folder, self.ready_dir / folder.name)
        out = []
        for folder in sorted(p for p in self.ready_dir.iterdir() if p.is_dir()):
            peer = Peer("", "", "")
            try:
                meta = json.loads((folder / _BATCH_FILE).read_text())
                peer = Peer(**meta["peer"])
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("DICOM batch %s has no readable %s", folder.name, _BATCH_FILE)
            files = sum(1 for _ in folder.glob("*.dcm"))
            out.append(Batch(folder.name, folder, peer, files))
        return out

    def done(self, batch: Batch) -> None:
        """Remove an imported batch's files."""
        shutil.rmtree(batch.folder, ignore_errors=True)

    def quarantine(
        self, batch: Batch, reason: str, files: Iterable[tuple[str, str]] | None = None
    ) -> Path:
        """Keep a batch's files (all, or the ``files`` given as (file name, reason)) in
        ``quarantine/<batch id>/`` beside a ``reason.json``; the rest of the batch is
        removed. Returns the quarantine folder."""
        target = self.quarantine_dir / batch.id
        entry: dict[str, Any] = {
            "batch": batch.id,
            "peer": asdict(batch.peer),
            "reason": reason,
            "quarantined": _now(),
        }
        if files is None:
            os.replace(batch.folder, target)
            (target / _BATCH_FILE).unlink(missing_ok=True)
            entry["files"] = [p.name for p in sorted(target.glob("*.dcm"))]
        else:
            _private_dir(target)
            kept = []
            for name, why in files:
                source = batch.folder / Path(name).name
                if source.is_file():
                    os.replace(source, target / source.name)
                    kept.append({"file": source.name, "reason": why})
            entry["files"] = kept
            self.done(batch)
        (target / _REASON_FILE).write_text(json.dumps(entry, indent=2))
        return target
