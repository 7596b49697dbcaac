"""Prompts a simulated annotator gives: the reference's box (optionally jittered), clicks
at the centre of the largest error region, and scribble discs for engines without clicks.

Arrays are ``(planes, rows, columns)``; a 2D image is one plane. Coordinates are voxel
indices with centres at integers, as in :class:`~medlabel.engines.base.EngineRequest`.
Random steps are split from deterministic ones: :func:`sample_box_offsets` draws the
jitter, :func:`apply_box_offsets` applies recorded offsets, so a run can be replayed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

Box2D = tuple[float, float, float, float]  # (row0, col0, row1, col1), inclusive centres


@dataclass(frozen=True)
class Click:
    """A click at voxel ``point`` ``(plane, row, column)``: on the structure if ``positive``
    (a miss to add), outside it otherwise (a false positive to remove)."""

    point: tuple[int, int, int]
    positive: bool


def _validate_inputs(*arrays: np.ndarray, ndim: int) -> None:
    for arr in arrays:
        if arr.ndim != ndim:
            raise ValueError(f"expected a {ndim}D mask, got shape {arr.shape}")
    if len({arr.shape for arr in arrays}) > 1:
        raise ValueError(f"masks must have the same shape; got {[a.shape for a in arrays]}")


def bounding_box(mask2d: np.ndarray) -> Box2D:
    """The tight box of a 2D mask as ``(row0, col0, row1, col1)``, corners at the centres
    of the outermost pixels (inclusive).

    Raises
    ------
    ValueError
        If the mask is not 2D or is empty.

    Examples
    --------
    >>> m = np.zeros((5, 6), bool); m[1:3, 2:5] = True
    >>> bounding_box(m)
    (1.0, 2.0, 2.0, 4.0)
    """
    mask = np.asarray(mask2d, bool)
    _validate_inputs(mask, ndim=2)
    idx = np.argwhere(mask)
    if len(idx) == 0:
        raise ValueError("the mask is empty: it has no bounding box")
    (r0, c0), (r1, c1) = idx.min(0), idx.max(0)
    return float(r0), float(c0), float(r1), float(c1)


def sample_box_offsets(box: Box2D, fraction: float, rng: np.random.Generator) -> Box2D:
    """Random shifts of the box's four edges, each uniform in ``±fraction`` of the box's
    height (rows) or width (columns), in pixels, rounded to 0.01 px.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> off = sample_box_offsets((10.0, 10.0, 29.0, 19.0), 0.1, rng)
    >>> all(abs(o) <= 2.0 for o in off[::2]) and all(abs(o) <= 1.0 for o in off[1::2])
    True
    >>> sample_box_offsets((10.0, 10.0, 29.0, 19.0), 0.0, rng)
    (0.0, 0.0, 0.0, 0.0)
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"jitter fraction must be in [0, 1], got {fraction}")
    height = box[2] - box[0] + 1.0
    width = box[3] - box[1] + 1.0
    scale = np.array([height, width, height, width]) * fraction
    draws = rng.uniform(-1.0, 1.0, size=4) * scale
    r0, c0, r1, c1 = (round(float(v), 2) + 0.0 for v in draws)  # + 0.0: no -0.0
    return r0, c0, r1, c1


def apply_box_offsets(box: Box2D, offsets: Box2D, shape: tuple[int, int]) -> Box2D:
    """``box`` with ``offsets`` added to its edges, sorted and clipped to the image.

    Examples
    --------
    >>> apply_box_offsets((2.0, 2.0, 5.0, 5.0), (-3.0, 1.0, 0.5, 9.0), (8, 8))
    (0.0, 3.0, 5.5, 7.0)
    """
    r0, c0, r1, c1 = (b + o for b, o in zip(box, offsets, strict=True))
    rows, cols = shape
    ra, rb = sorted((min(max(r0, 0.0), rows - 1.0), min(max(r1, 0.0), rows - 1.0)))
    ca, cb = sorted((min(max(c0, 0.0), cols - 1.0), min(max(c1, 0.0), cols - 1.0)))
    return ra, ca, rb, cb


def centre_point(region2d: np.ndarray, spacing: Sequence[float] = (1.0, 1.0)) -> tuple[int, int]:
    """The pixel of a 2D region farthest from its border (maximum of the Euclidean
    distance transform; the image edge counts as border). Among tied pixels (a thin
    region ties along its length) the one nearest their mean, first in raster order.

    Parameters
    ----------
    region2d
        Boolean mask ``(rows, columns)``, not empty.
    spacing
        Pixel size ``(row, column)`` in mm, so distances are physical.

    Examples
    --------
    >>> m = np.zeros((7, 9), bool); m[1:6, 1:8] = True
    >>> centre_point(m)
    (3, 4)
    """
    region = np.asarray(region2d, bool)
    _validate_inputs(region, ndim=2)
    if not region.any():
        raise ValueError("the region is empty: it has no centre")
    dist = ndimage.distance_transform_edt(np.pad(region, 1), sampling=tuple(spacing))[1:-1, 1:-1]
    tied = np.argwhere(dist >= dist.max() - 1e-9)
    # thin regions tie along their length: take the tied pixel nearest the ties' mean
    gap = ((tied - tied.mean(0)) ** 2).sum(1)
    r, c = tied[int(np.argmin(gap))]
    return int(r), int(c)


def largest_error_region(
    reference: np.ndarray, prediction: np.ndarray
) -> tuple[np.ndarray, bool] | None:
    """The largest connected region (face connectivity) of misses or of false positives.

    Misses (reference but not prediction) and false positives are labelled separately,
    so a region has one sign. Returns ``(region, positive)``: ``positive`` is ``True``
    for a miss; ``None`` when the masks agree. Ties go to misses, then to the region
    met first in raster order.

    Examples
    --------
    >>> ref = np.zeros((1, 6, 6), bool); ref[0, 1:5, 1:5] = True
    >>> pred = np.zeros_like(ref); pred[0, 1:5, 1:3] = True; pred[0, 0, 5] = True
    >>> region, positive = largest_error_region(ref, pred)
    >>> int(region.sum()), positive
    (8, True)
    """
    ref = np.asarray(reference, bool)
    pred = np.asarray(prediction, bool)
    _validate_inputs(ref, pred, ndim=ref.ndim)
    best: tuple[int, np.ndarray, bool] | None = None
    for positive, errors in ((True, ref & ~pred), (False, pred & ~ref)):
        if not errors.any():
            continue
        labels, n = ndimage.label(errors)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        k = int(np.argmax(sizes))
        if best is None or sizes[k] > best[0]:
            best = (int(sizes[k]), labels == k + 1, positive)
    if best is None:
        return None
    return best[1], best[2]


def next_click(
    reference: np.ndarray,
    prediction: np.ndarray,
    *,
    axis: int = 0,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> Click | None:
    """Where a careful annotator clicks next: in the largest error region, on the slice
    (along ``axis``) where that region is widest, at its centre on that slice.

    Parameters
    ----------
    reference, prediction
        Boolean masks ``(planes, rows, columns)``; a 2D image has one plane.
    axis
        Array axis of the slices the annotator works on.
    spacing
        Voxel size ``(plane, row, column)`` in mm.

    Returns
    -------
    Click or None
        Positive in a miss, negative in a false positive; ``None`` if nothing is wrong.

    Examples
    --------
    >>> ref = np.zeros((1, 9, 9), bool); ref[0, 2:7, 2:7] = True
    >>> next_click(ref, np.zeros_like(ref))
    Click(point=(0, 4, 4), positive=True)
    >>> pred = ref.copy(); pred[0, 0:9, 8] = True
    >>> next_click(ref, pred)
    Click(point=(0, 4, 8), positive=False)
    """
    ref = np.asarray(reference, bool)
    pred = np.asarray(prediction, bool)
    _validate_inputs(ref, pred, ndim=3)
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    found = largest_error_region(ref, pred)
    if found is None:
        return None
    region, positive = found
    others = tuple(ax for ax in range(3) if ax != axis)
    index = int(np.argmax(region.sum(axis=others)))
    in_plane = (float(spacing[others[0]]), float(spacing[others[1]]))
    a, b = centre_point(np.take(region, index, axis=axis), in_plane)
    point = [0, 0, 0]
    point[axis], point[others[0]], point[others[1]] = index, a, b
    return Click((point[0], point[1], point[2]), positive)


def scribble(
    shape: tuple[int, int, int], points: Sequence[tuple[int, int, int]], *, axis: int, radius: float
) -> np.ndarray:
    """Discs of ``radius`` pixels around ``points``, drawn on each point's slice along
    ``axis``, as a boolean mask of ``shape`` (a click turned into a scribble).

    Examples
    --------
    >>> s = scribble((1, 9, 9), [(0, 4, 4)], axis=0, radius=1)
    >>> int(s.sum()), bool(s[0, 4, 4]), bool(s[0, 3, 3])
    (5, True, False)
    """
    out = np.zeros(shape, bool)
    others = tuple(ax for ax in range(3) if ax != axis)
    na, nb = shape[others[0]], shape[others[1]]
    ga, gb = np.ogrid[:na, :nb]
    for p in points:
        disc = (ga - p[others[0]]) ** 2 + (gb - p[others[1]]) ** 2 <= radius**2
        view = np.take(out, p[axis], axis=axis) | disc
        idx: list[int | slice] = [slice(None)] * 3
        idx[axis] = p[axis]
        out[tuple(idx)] = view
    return out
