"""A memory-bounded cache of image embeddings, keyed by the exact model input."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np


def input_key(model_input: np.ndarray) -> str:
    """A digest of the model's input image: same pixels and preprocessing, same key.

    Examples
    --------
    >>> a = np.zeros((3, 4, 4), np.float32)
    >>> input_key(a) == input_key(a.copy()), input_key(a) == input_key(a + 1)
    (True, False)
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(str(model_input.shape).encode())
    h.update(np.ascontiguousarray(model_input).tobytes())
    return h.hexdigest()


class EmbeddingCache:
    """Least-recently-used embeddings, at most ``max_bytes`` of them (thread-safe).

    Examples
    --------
    >>> c = EmbeddingCache(max_bytes=100)
    >>> c.put("a", np.zeros(10, np.float64)); c.put("b", np.zeros(10, np.float64))
    >>> c.get("a") is None, c.get("b") is not None
    (True, True)
    """

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: str, value: Any) -> None:
        size = int(value.nbytes) if hasattr(value, "nbytes") else int(value.numel() * 4)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, (_, n) = self._items.popitem(last=False)
                self._bytes -= n

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes
