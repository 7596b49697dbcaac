"""Housekeeping: removing blobs that no row refers to (left by an interrupted import)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from medlabel.services.blobrefs import referenced_digests
from medlabel.services.context import Context

log = logging.getLogger(__name__)


@dataclass
class GarbageReport:
    checked: int
    removed: int
    bytes_freed: int


def collect_garbage(ctx: Context, *, min_age_seconds: float = 3600.0) -> GarbageReport:
    """Delete blobs that no database row refers to and that are older than
    ``min_age_seconds`` (younger ones may belong to an import still in progress)."""
    with ctx.db.read() as s:
        keep = referenced_digests(s)
    now = time.time()
    checked = removed = freed = 0
    for digest in list(ctx.blobs.iter_digests()):
        checked += 1
        if digest in keep:
            continue
        path = ctx.blobs.local_path(digest)
        if path is not None:
            stat = path.stat()
            if now - stat.st_mtime < min_age_seconds:
                continue
            freed += stat.st_size
        ctx.blobs.delete(digest)
        removed += 1
    log.info("garbage collection removed %d of %d blobs", removed, checked)
    return GarbageReport(checked, removed, freed)
