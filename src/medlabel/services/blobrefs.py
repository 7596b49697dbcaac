"""Which blobs the database refers to; used to undo blob writes of a failed transaction."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from medlabel.storage.blob import BlobRef, BlobStore
from medlabel.storage.db.engine import Database
from medlabel.storage.db.models import (
    Draft,
    Evaluation,
    Export,
    Image,
    Instance,
    ModelVersion,
    Proposal,
    Revision,
)

log = logging.getLogger(__name__)

DIGEST_COLUMNS: tuple[ColumnElement[Any], ...] = (
    Image.__table__.c.pixel_digest,
    Image.__table__.c.thumbnail_digest,
    Instance.__table__.c.dicom_digest,
    Revision.__table__.c.mask_digest,
    Draft.__table__.c.mask_digest,
    Export.__table__.c.digest,
    Proposal.__table__.c.mask_digest,
    Evaluation.__table__.c.report_digest,
    Evaluation.__table__.c.html_digest,
    Proposal.__table__.c.uncertainty_digest,
    ModelVersion.__table__.c.weights_digest,
)


def referenced_among(session: Session, digests: list[str]) -> set[str]:
    """Those of ``digests`` that some row refers to (batched queries)."""
    out: set[str] = set()
    for i in range(0, len(digests), 500):
        chunk = digests[i : i + 500]
        for col in DIGEST_COLUMNS:
            out.update(d for (d,) in session.execute(select(col).where(col.in_(chunk))) if d)
    return out


def referenced_digests(session: Session) -> set[str]:
    """Every blob digest the database refers to."""
    out: set[str] = set()
    for col in DIGEST_COLUMNS:
        out.update(d for (d,) in session.execute(select(col).where(col.is_not(None))) if d)
    return out


class BlobTransaction:
    """Tracks blobs written for one unit of work; :meth:`sync` makes them durable,
    :meth:`rollback` deletes those that were new and that no committed row refers to."""

    #: threads making blobs durable ahead of the commit (:meth:`sync_soon`)
    SYNC_THREADS = 4

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self.created: list[str] = []
        self._seen: set[str] = set()
        self._early: dict[str, Future[None]] = {}
        self._syncer: ThreadPoolExecutor | None = None

    def put(self, data: bytes) -> BlobRef:
        ref = self.blobs.put_bytes(data)
        self.adopt(ref.digest, ref.created)
        return ref

    def put_stream(self, stream: BinaryIO) -> BlobRef:
        ref = self.blobs.put_stream(stream)
        self.adopt(ref.digest, ref.created)
        return ref

    def adopt(self, digest: str, created: bool) -> None:
        """Track a blob written elsewhere (e.g. by an import worker process)."""
        if created and digest not in self._seen:
            self._seen.add(digest)
            self.created.append(digest)

    def sync_soon(self, digest: str) -> None:
        """Start making a new blob durable now, in a background thread, so that a long
        unit of work (an import) overlaps the disk's flushes with its other work instead
        of waiting for all of them at the commit."""
        if digest in self._early:
            return
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(self.SYNC_THREADS, thread_name_prefix="blob-sync")
        self._early[digest] = self._syncer.submit(self.blobs.sync, [digest])

    def sync(self) -> None:
        """Make every new blob durable (before rows that refer to them are committed)."""
        try:
            for future in self._early.values():
                future.result()
            rest = [d for d in self.created if d not in self._early]
            if rest:
                self.blobs.sync(rest)
        finally:
            self._stop_syncer()

    def _stop_syncer(self) -> None:
        if self._syncer is not None:
            self._syncer.shutdown(wait=True)
            self._syncer = None
        self._early.clear()

    def release_unreferenced(self, session: Session) -> int:
        """After a commit: delete the new blobs nothing refers to (e.g. files of
        duplicate instances). Returns how many were deleted."""
        keep = referenced_among(session, self.created)
        removed = 0
        for digest in self.created:
            if digest not in keep:
                self.blobs.delete(digest)
                removed += 1
        self.created.clear()
        self._seen.clear()
        return removed

    def rollback(self, session: Session) -> None:
        """Delete the new blobs that no committed row refers to."""
        self._stop_syncer()
        self.release_unreferenced(session)


@contextlib.contextmanager
def unit_of_work(
    db: Database, blobs: BlobStore, tx: BlobTransaction | None = None
) -> Iterator[tuple[Session, BlobTransaction]]:
    """A write transaction together with the blobs it refers to.

    On success the blobs are made durable, then the rows are committed. On any error the
    rows are rolled back and the new blobs no committed row refers to are deleted, so a
    failure leaves neither half-stored rows nor orphan files. Pass ``tx`` to include
    blobs written before the transaction began (e.g. while staging an import).
    """
    tx = tx or BlobTransaction(blobs)
    try:
        with db.write() as session:
            yield session, tx
            if tx.created:  # new files must be durable before rows refer to them
                tx.sync()
    except BaseException:
        if tx.created:
            with db.read() as s:
                tx.rollback(s)
        raise
