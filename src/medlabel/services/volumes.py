"""Loading stored pixel arrays, memory-mapped when the blob store is local, with an LRU."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from medlabel.io.arrays import decode_array
from medlabel.storage.blob import BlobStore


class VolumeCache:
    """Arrays by blob digest. Local blobs are memory-mapped (the OS caches the pages);
    others are read into memory and evicted least-recently-used beyond ``max_bytes``."""

    def __init__(self, blobs: BlobStore, *, max_bytes: int) -> None:
        self._blobs = blobs
        self._max = max_bytes
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, digest: str) -> np.ndarray:
        """The array stored under ``digest`` (read-only)."""
        with self._lock:
            arr = self._items.get(digest)
            if arr is not None:
                self._items.move_to_end(digest)
                return arr
        path = self._blobs.local_path(digest)
        if path is not None:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            size = 0  # pages belong to the OS cache
        else:
            arr = decode_array(self._blobs.read_bytes(digest))
            arr.setflags(write=False)
            size = arr.nbytes
        with self._lock:
            if digest not in self._items:
                self._items[digest] = arr
                self._bytes += size
                self._evict()
        return arr

    def _evict(self) -> None:
        while self._bytes > self._max and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            if not isinstance(old, np.memmap):
                self._bytes -= old.nbytes
        while len(self._items) > 4096:
            self._items.popitem(last=False)
