"""Label masks as clients send them: raw bytes (gzip) or a NIfTI file on the image's grid."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from medlabel.core.errors import InvalidInputError, TooLargeError
from medlabel.imaging.reorient import align_to_grid
from medlabel.io.nifti import read_nifti


class MaskEncoding(StrEnum):
    """``raw-gzip``: gzip (or zlib) of the C-order ``(planes, rows, columns)`` array;
    ``nifti``: a ``.nii``/``.nii.gz`` file whose grid matches the image up to axis order
    and direction (as saved by ITK-SNAP, 3D Slicer or a browser viewer)."""

    RAW_GZIP = "raw-gzip"
    NIFTI = "nifti"


_DTYPES = {"uint8": np.uint8, "uint16": np.uint16}


def _inflate(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise InvalidInputError(f"mask data is not valid gzip/zlib: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise TooLargeError(f"mask data inflates to more than the expected {limit} bytes")
    return out


def decode_mask(
    encoding: MaskEncoding | str,
    data: bytes,
    *,
    shape: Sequence[int],
    affine: np.ndarray,
    dtype: str = "uint8",
) -> np.ndarray:
    """Decode a client's mask into a ``(planes, rows, columns)`` integer array on the
    image's grid.

    Raises
    ------
    InvalidInputError
        Bad encoding, wrong size or grid, non-integer values.
    """
    try:
        encoding = MaskEncoding(encoding)
    except ValueError:
        raise InvalidInputError(
            f"unknown mask encoding {encoding!r}; use one of {[e.value for e in MaskEncoding]}"
        ) from None
    shape = tuple(int(s) for s in shape)
    if encoding == MaskEncoding.RAW_GZIP:
        if dtype not in _DTYPES:
            raise InvalidInputError(f"mask dtype must be uint8 or uint16; got {dtype!r}")
        dt = np.dtype(_DTYPES[dtype])
        expected = int(np.prod(shape)) * dt.itemsize
        raw = _inflate(data, expected)
        if len(raw) != expected:
            raise InvalidInputError(
                f"mask has {len(raw)} bytes but the image's shape {shape} needs {expected} "
                f"bytes of {dtype}"
            )
        return np.frombuffer(raw, dtype=dt).reshape(shape).copy()
    vol = read_nifti(data, name="mask", max_voxels=int(np.prod(shape)))
    try:
        arr = align_to_grid(vol.array, vol.affine, shape, affine)
    except ValueError as exc:
        raise InvalidInputError(f"mask NIfTI: {exc}") from None
    if arr.dtype.kind == "f":
        if not np.all(np.mod(arr, 1) == 0):
            raise InvalidInputError("mask NIfTI holds non-integer values; labels are integers")
        arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > 65535):
        raise InvalidInputError("mask values must be within 0..65535")
    out_dtype = np.uint8 if (arr.size == 0 or arr.max() < 256) else np.uint16
    return np.ascontiguousarray(arr, dtype=out_dtype)


def encode_raw_gzip(mask: np.ndarray) -> bytes:
    """The ``raw-gzip`` encoding of a mask (for clients and tests)."""
    return gzip.compress(np.ascontiguousarray(mask).tobytes(), compresslevel=1)
