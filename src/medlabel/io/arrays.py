"""Arrays as bytes: ``.npy`` (memory-mappable) for pixels, zlib-compressed ``.npy`` for masks."""

from __future__ import annotations

import io
import zlib

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
