"""COCO mask encodings: run-length (RLE) and polygons, without pycocotools.

COCO RLE flattens a ``(height, width)`` mask in column-major (Fortran) order and stores
alternating run lengths, starting with a run of zeros (which may be 0). The compressed
string form packs each count (after the first two, as a difference to the count two
places before) into 5-bit groups with a continuation bit, offset by 48 into printable
ASCII, as pycocotools' ``maskApi.c`` does.

COCO pixel coordinates put pixel ``(row r, column c)`` on the square
``[c, c+1) x [r, r+1)``, so its centre is at ``(c + 0.5, r + 0.5)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rle_counts(mask: np.ndarray) -> list[int]:
    """Run lengths of a 2D mask in column-major order, starting with zeros.

    Examples
    --------
    >>> rle_counts(np.array([[0, 1], [1, 1]]))
    [1, 3]
    >>> rle_counts(np.array([[1, 0]]))
    [0, 1, 1]
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D (height, width); got shape {mask.shape}")
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = [int(c) for c in np.diff(bounds)]
    return [0, *counts] if flat[0] else counts


def rle_decode_counts(counts: Sequence[int], height: int, width: int) -> np.ndarray:
    """Boolean ``(height, width)`` mask from run lengths (inverse of :func:`rle_counts`).

    Raises
    ------
    ValueError
        If a count is negative or the counts do not add up to ``height * width``.
    """
    c = np.asarray(counts, dtype=np.int64)
    if c.ndim != 1 or (c < 0).any():
        raise ValueError("RLE counts must be a flat list of non-negative integers")
    if int(c.sum()) != height * width:
        raise ValueError(f"RLE counts add up to {int(c.sum())}, not {height}x{width}")
    values = np.zeros(c.size, dtype=bool)
    values[1::2] = True
    return np.repeat(values, c).reshape((height, width), order="F")


def rle_to_string(counts: Sequence[int]) -> str:
    """Compress run lengths into COCO's RLE string.

    Examples
    --------
    >>> rle_to_string([1, 3])
    '13'
    """
    out = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_from_string(text: str) -> list[int]:
    """Decode COCO's compressed RLE string into run lengths.

    Raises
    ------
    ValueError
        On characters outside the code's range or a truncated count.
    """
    data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    counts: list[int] = []
    p = 0
    while p < len(data):
        x = 0
        k = 0
        more = True
        while more:
            if p >= len(data):
                raise ValueError("truncated RLE string")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid character {chr(data[p])!r} in RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rasterize_polygons(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Fill COCO polygons ``[x0, y0, x1, y1, ...]`` (pixel coordinates) into a mask.

    A pixel is inside a polygon when its centre is (even-odd rule, scanline by scanline);
    several polygons are united, as pycocotools does.

    Examples
    --------
    >>> rasterize_polygons([[1, 1, 3, 1, 3, 2, 1, 2]], 3, 4).astype(int).tolist()
    [[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    out = np.zeros((height, width), dtype=bool)
    centres = np.arange(height) + 0.5
    for poly in polygons:
        xy = np.asarray(poly, dtype=np.float64)
        if xy.ndim != 1 or xy.size < 6 or xy.size % 2 or not np.all(np.isfinite(xy)):
            raise ValueError("a polygon needs at least 3 finite (x, y) vertices")
        x0, y0 = xy[0::2], xy[1::2]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        inside = np.zeros((height, width), dtype=bool)
        for r in np.flatnonzero((centres >= y0.min()) & (centres < y0.max())):
            y = centres[r]
            crossing = (y0 <= y) != (y1 <= y)
            t = (y - y0[crossing]) / (y1[crossing] - y0[crossing])
            xs = np.sort(x0[crossing] + t * (x1[crossing] - x0[crossing]))
            starts = np.clip(np.ceil(xs[0::2] - 0.5).astype(np.int64), 0, width)
            stops = np.clip(np.ceil(xs[1::2] - 0.5).astype(np.int64), 0, width)
            for a, b in zip(starts, stops, strict=True):
                inside[r, a:b] = True
        out |= inside
    return out


def mask_bbox(mask: np.ndarray) -> list[float]:
    """COCO ``[x, y, width, height]`` of a non-empty 2D mask, in pixel coordinates."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [
        float(cols[0]),
        float(rows[0]),
        float(cols[-1] - cols[0] + 1),
        float(rows[-1] - rows[0] + 1),
    ]
