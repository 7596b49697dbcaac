"""A small thread-safe cache with expiry, for hot read paths (sessions, permissions)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """Up to ``max_items`` values, each forgotten ``seconds`` after it was stored
    (least recently used first when full). ``seconds`` 0 disables the cache.

    Examples
    --------
    >>> c: TTLCache[int] = TTLCache(seconds=60)
    >>> c.set("a", 1); c.get("a")
    1
    >>> c.clear(); c.get("a") is None
    True
    """

    def __init__(self, *, seconds: float, max_items: int = 10_000) -> None:
        self.seconds = seconds
        self.max_items = max_items
        self._items: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        if self.seconds <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            expires, value = hit
            if expires <= now:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def set(self, key: Hashable, value: V) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            self._items[key] = (time.monotonic() + self.seconds, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
