"""Housekeeping: removing blobs that no row refers to (left by an interrupted import)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from medlabel.services.blobrefs import referenced_digests
from medlabel.services.context import Context
from medlabel.storage.blob.s3 import S3BlobStore

log = logging.getLogger(__name__)


@dataclass
class GarbageReport:
    checked: int
    removed: int
    bytes_freed: int


def collect_garbage(ctx: Context, *, min_age_seconds: float = 3600.0) -> GarbageReport:
    """Delete blobs that no database row refers to and that are older than
    ``min_age_seconds`` (younger ones may belong to an import still in progress); on S3,
    abort unfinished multipart uploads begun before that too."""
    with ctx.db.read() as s:
        keep = referenced_digests(s)
    now = time.time()
    checked = removed = freed = 0
    for digest in list(ctx.blobs.iter_digests()):
        checked += 1
        if digest in keep:
            continue
        stat = ctx.blobs.stat(digest)  # local file or object: both have a last write time
        if stat is not None:
            if now - stat.modified < min_age_seconds:
                continue
            freed += stat.size
        ctx.blobs.delete(digest)
        removed += 1
    log.info("garbage collection removed %d of %d blobs", removed, checked)
    if isinstance(ctx.blobs, S3BlobStore):  # uploads of killed processes: unseen, not free
        aborted = ctx.blobs.abort_stale_uploads(older_than_seconds=min_age_seconds)
        if aborted:
            log.info("garbage collection aborted %d unfinished multipart uploads", aborted)
    return GarbageReport(checked, removed, freed)
