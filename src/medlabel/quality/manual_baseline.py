"""The manual baseline: how many polygon vertices a person would place to outline a
structure well enough (Dice ≥ 0.90 by default), simulated from the reference contour.

The reference's contours (outer borders and holes, at level 0.5 between pixel centres)
are simplified with Douglas–Peucker at increasing tolerance; polygons left with fewer
than three vertices are dropped (nobody draws them). The baseline is the fewest vertices
whose filled polygons (even–odd rule, so holes stay holes) still reach the target Dice
against the reference. For a volume, it is the sum over the slices that contain the
structure, each slice outlined on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from skimage import measure

from medlabel.quality.overlap import dice

#: Douglas–Peucker tolerances tried, in pixels (0 keeps the contour as traced)
_TOLERANCES = (0.0, *(0.5 * 1.25**k for k in range(50)))


@dataclass(frozen=True)
class ManualBaseline:
    """Result of :func:`manual_vertices`.

    Attributes
    ----------
    vertices
        Polygon vertices needed (summed over slices for a volume).
    dice
        Dice of the filled polygons against the reference (3D Dice for a volume).
    slices
        Slices outlined (1 for a 2D image).
    reached
        Whether every slice reached the target (false only for structures too thin or
        small to be outlined by polygons through pixel centres).
    """

    vertices: int
    dice: float
    slices: int
    reached: bool


def _validate_inputs(mask: np.ndarray, ndim: int, target: float) -> None:
    if mask.ndim != ndim:
        raise ValueError(f"expected a {ndim}D mask, got shape {mask.shape}")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target Dice must be in (0, 1], got {target}")


def fill_polygons(polygons: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise closed polygons with the even–odd rule: a pixel is inside if its centre
    is (a polygon inside another makes a hole).

    Parameters
    ----------
    polygons
        Arrays ``(N, 2)`` of ``(row, column)`` vertices, pixel centres at integers;
        each is closed implicitly (the last vertex joins the first).
    shape
        ``(rows, columns)`` of the output.

    Examples
    --------
    >>> square = np.array([[0.5, 0.5], [0.5, 3.5], [3.5, 3.5], [3.5, 0.5]])
    >>> fill_polygons([square], (5, 5)).astype(int)[:, :4].tolist()
    [[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0]]
    """
    rows, cols = shape
    edges = []
    for poly in polygons:
        p = np.asarray(poly, np.float64)
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"a polygon must have shape (N, 2), got {p.shape}")
        edges.append(np.hstack([p, np.roll(p, -1, axis=0)]))
    out = np.zeros(shape, bool)
    if not edges:
        return out
    e = np.vstack(edges)
    e = e[e[:, 0] != e[:, 2]]  # horizontal edges cross no row centre
    y0, x0, y1, x1 = e.T
    # an edge crosses row r when min(y) <= r < max(y) (half-open: a vertex counts once)
    start = np.clip(np.ceil(np.minimum(y0, y1)), 0, rows).astype(np.int64)
    stop = np.clip(np.ceil(np.maximum(y0, y1)), 0, rows).astype(np.int64)
    count = np.maximum(stop - start, 0)
    if count.sum() == 0:
        return out
    edge = np.repeat(np.arange(len(e)), count)
    offset = np.arange(len(edge)) - np.repeat(np.cumsum(count) - count, count)
    row = start[edge] + offset
    x = x0[edge] + (row - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    order = np.lexsort((x, row))
    row, x = row[order], x[order]
    # each row has an even number of crossings; consecutive pairs bound the inside
    r, xa, xb = row[0::2], x[0::2], x[1::2]
    a = np.clip(np.ceil(xa), 0, cols).astype(np.int64)
    b = np.clip(np.ceil(xb), 0, cols).astype(np.int64)
    diff = np.zeros((rows, cols + 1), np.int32)
    np.add.at(diff, (r, a), 1)
    np.add.at(diff, (r, b), -1)
    out[:] = np.cumsum(diff, axis=1)[:, :cols] > 0
    return out


def contours(mask2d: np.ndarray) -> list[np.ndarray]:
    """Closed contours of a 2D mask (outer borders and holes), ``(N, 2)`` arrays of
    ``(row, column)`` whose last point repeats the first.

    Examples
    --------
    >>> m = np.zeros((6, 6), bool); m[1:5, 1:5] = True; m[2:4, 2:4] = False
    >>> len(contours(m))
    2
    """
    mask = np.asarray(mask2d, bool)
    padded = np.pad(mask, 1).astype(np.float64)  # borders at the image edge close too
    return [c - 1.0 for c in measure.find_contours(padded, 0.5)]


def simplify(polygons: Sequence[np.ndarray], tolerance: float) -> list[np.ndarray]:
    """Douglas–Peucker simplification of closed contours; the repeated last point is
    dropped and polygons with fewer than 3 vertices are discarded.

    Examples
    --------
    >>> m = np.zeros((12, 12), bool); m[2:10, 2:10] = True
    >>> [len(p) for p in simplify(contours(m), 2.0)]
    [4]
    """
    out = []
    for poly in polygons:
        p = np.asarray(poly, np.float64)
        if tolerance > 0:
            p = measure.approximate_polygon(p, tolerance)
        if len(p) > 1 and np.array_equal(p[0], p[-1]):
            p = p[:-1]
        if len(p) >= 3:
            out.append(p)
    return out


def _slice_baseline(mask: np.ndarray, target: float) -> tuple[int, np.ndarray, bool]:
    """Fewest vertices on one slice, the filled polygons, and whether the target is met."""
    traced = contours(mask)
    best: tuple[int, np.ndarray] | None = None
    fallback: tuple[int, np.ndarray, float] | None = None
    for tol in _TOLERANCES:
        polys = simplify(traced, tol)
        if not polys:
            break
        n = sum(len(p) for p in polys)
        filled = fill_polygons(polys, mask.shape)
        score = dice(filled, mask)
        if score >= target and (best is None or n < best[0]):
            best = (n, filled)
        if fallback is None or score > fallback[2]:
            fallback = (n, filled, score)
        if score < target - 0.1:  # coarser outlines only get worse
            break
    if best is not None:
        return best[0], best[1], True
    if fallback is None:  # specks too small for any polygon
        return 0, np.zeros_like(mask), False
    return fallback[0], fallback[1], False


def manual_vertices(mask: np.ndarray, *, axis: int = 0, target: float = 0.90) -> ManualBaseline:
    """Polygon vertices a person needs to outline ``mask`` with Dice ≥ ``target``.

    Parameters
    ----------
    mask
        Boolean mask ``(planes, rows, columns)``; a 2D image is one plane.
    axis
        Array axis of the slices a person would outline (volumes).
    target
        Dice to reach on each slice.

    Returns
    -------
    ManualBaseline
        Vertices summed over the slices containing the structure, and the Dice of the
        stacked polygons; an empty mask needs 0 vertices (Dice 1.0).

    Examples
    --------
    >>> m = np.zeros((1, 30, 30), bool); m[0, 5:25, 8:22] = True
    >>> manual_vertices(m)
    ManualBaseline(vertices=4, dice=1.0, slices=1, reached=True)
    """
    ref = np.asarray(mask, bool)
    _validate_inputs(ref, 3, target)
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    drawn = np.zeros_like(ref)
    total, slices, reached = 0, 0, True
    for index in np.flatnonzero(ref.any(axis=tuple(ax for ax in range(3) if ax != axis))):
        idx: list[int | slice] = [slice(None)] * 3
        idx[axis] = int(index)
        n, filled, ok = _slice_baseline(ref[tuple(idx)], target)
        drawn[tuple(idx)] = filled
        total, slices, reached = total + n, slices + 1, reached and ok
    return ManualBaseline(vertices=total, dice=dice(drawn, ref), slices=slices, reached=reached)
