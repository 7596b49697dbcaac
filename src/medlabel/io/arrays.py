"""Arrays as bytes: ``.npy`` (memory-mappable) for pixels, zlib-compressed ``.npy`` for masks."""

from __future__ import annotations

import io
import zlib
from typing import Any

import numpy as np

from medlabel.core.errors import InvalidInputError

_ZLIB_MAGIC = b"MLZ1"


def encode_array(array: np.ndarray, *, compress: bool = False) -> bytes:
    """Serialise ``array`` as ``.npy`` bytes, zlib-compressed when ``compress``.

    Examples
    --------
    >>> a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    >>> bool(np.array_equal(decode_array(encode_array(a, compress=True)), a))
    True
    """
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    raw = buf.getvalue()
    if compress:
        return _ZLIB_MAGIC + zlib.compress(raw, 6)
    return raw


def decode_array(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_array`."""
    if data[:4] == _ZLIB_MAGIC:
        data = zlib.decompress(data[4:])
    try:
        arr: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise InvalidInputError(f"not an encoded array: {exc}") from None
    return arr


class _Chain(io.RawIOBase):
    """A read-only stream over byte buffers, copied only as they are read."""

    def __init__(self, parts: list[memoryview]) -> None:
        self._parts = parts
        self._index = 0
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        written = 0
        while written < len(target) and self._index < len(self._parts):
            part = self._parts[self._index]
            n = min(len(target) - written, len(part) - self._offset)
            target[written : written + n] = part[self._offset : self._offset + n]
            written += n
            self._offset += n
            if self._offset == len(part):
                self._index += 1
                self._offset = 0
        return written


def npy_stream(array: np.ndarray) -> io.BufferedReader:
    """The ``.npy`` file of ``array`` as a stream, without building it in memory (for
    storing large volumes).

    Examples
    --------
    >>> a = np.arange(12, dtype=np.int16).reshape(3, 4)
    >>> bool(np.array_equal(decode_array(npy_stream(a).read()), a))
    True
    """
    arr = np.ascontiguousarray(array)
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, np.lib.format.header_data_from_array_1_0(arr))
    body = memoryview(arr.data).cast("B") if arr.size else memoryview(b"")
    return io.BufferedReader(_Chain([memoryview(head.getvalue()), body]), 1024 * 1024)
