"""Coalesced ``image.read`` events: one row per (user, image, kind) per time window.

Scrolling through a volume fetches hundreds of slices a second; writing a row for each
would swamp the log and the database. :class:`ImageReadLog` remembers, in memory, when it
last recorded each (user, image, kind) and writes a new row only on the first read of a
window. The row is written before the data is served, in its own transaction.

Each server process keeps its own memory, so with several worker processes a read may be
recorded once per process per window. A restart starts new windows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from medlabel.security.audit.actions import AuditAction, ImageReadKind
from medlabel.security.audit.log import Actor, record
from medlabel.storage.db.engine import Database

Key = tuple[int, int, str]


class ImageReadLog:
    """Thread-safe coalescing of image reads into audit rows.

    Parameters
    ----------
    db
        Where rows are written.
    window_seconds
        One row per (user, image, kind) per this many seconds; 0 records every read.
    clock
        Monotonic time in seconds (tests pass a fake one).
    """

    #: forget windows that ended when more than this many keys are held
    PRUNE_AT = 10_000

    def __init__(
        self,
        db: Database,
        *,
        window_seconds: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_seconds < 0:
            raise ValueError("window_seconds must be >= 0")
        self._db = db
        self._window = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._opened: dict[Key, float] = {}

    def note(
        self,
        actor: Actor,
        image_id: int,
        project_id: int,
        kind: ImageReadKind | str,
    ) -> bool:
        """Record that ``actor`` read ``kind`` data of an image, unless already recorded
        in the current window. Returns True if a row was written.

        Raises whatever writing the row raises (the read should then not be served).
        """
        if kind.__class__ is not ImageReadKind:  # the enum call costs more than the rest
            kind = ImageReadKind(kind)
        key = (actor.id, image_id, str(kind))
        now = self._clock()
        opened = self._opened.get(key)  # fast path without the lock (dict reads are atomic)
        if opened is not None and now - opened < self._window:
            return False
        with self._lock:  # first read in a window: decide under the lock who writes the row
            opened = self._opened.get(key)
            if opened is not None and now - opened < self._window:
                return False
            self._opened[key] = now
            if len(self._opened) > self.PRUNE_AT:
                self._prune(now)
        try:
            with self._db.write() as s:
                record(
                    s,
                    actor,
                    AuditAction.IMAGE_READ,
                    target_type="image",
                    target_id=image_id,
                    project_id=project_id,
                    details={"kind": kind.value},
                )
        except BaseException:
            with self._lock:  # not recorded: the next read tries again
                if self._opened.get(key) == now:
                    del self._opened[key]
            raise
        return True

    def _prune(self, now: float) -> None:
        stale = [k for k, t in self._opened.items() if now - t >= self._window]
        for k in stale:
            del self._opened[k]

    def clear(self) -> None:
        """Forget all windows (the next read of anything is recorded)."""
        with self._lock:
            self._opened.clear()
