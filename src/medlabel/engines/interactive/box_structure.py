"""The structure a box is about, read from a segmentation model's class probabilities.

A trained segmentation model labels every voxel of an image with one of its classes. An
interactive engine built on it needs, for one prompt: the region the user pointed at
(:func:`prompt_region`: the box, grown to take in positive clicks, plus a margin), the
class of the structure there (:func:`pick_class`: the foreground class with the most
probability mass inside the box) and that class's log-odds against its strongest rival
over the region (:func:`class_logits`), which clicks then bend (:mod:`.corrections`).
Everything here is a pure function over arrays; coordinates are voxel indices ``(plane,
row, column)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: logit of voxels outside the prompt's region (never in the mask)
OUTSIDE = -10.0
#: probabilities are clipped to [EPS, 1 - EPS] before taking log-odds (|logit| <= 9.2)
EPS = 1e-4

Region = tuple[slice, slice, slice]


def _validate_inputs(probabilities: np.ndarray, region: Region) -> None:
    if probabilities.ndim != 4 or probabilities.shape[0] < 2:
        raise ValueError(
            "probabilities must be (classes >= 2, planes, rows, columns), "
            f"got shape {probabilities.shape}"
        )
    if len(region) != 3:
        raise ValueError(f"a region is 3 slices (plane, row, column), got {len(region)}")


def prompt_region(
    shape: tuple[int, int, int],
    points: Sequence[Sequence[float]],
    *,
    margin: Sequence[float] = (0.0, 0.0, 0.0),
) -> Region:
    """The voxels of the bounding box of ``points`` grown by ``margin`` voxels per axis.

    Parameters
    ----------
    shape
        Spatial shape of the image ``(planes, rows, columns)``.
    points
        Voxel coordinates ``(plane, row, column)``: the box's corners and any positive
        clicks; voxel centres are at integers.
    margin
        Voxels added on each side, per axis (rounded up).

    Returns
    -------
    tuple of slice
        Clipped to the image; never empty.

    Raises
    ------
    ValueError
        No points, or a point that is not 3 coordinates.

    Examples
    --------
    >>> prompt_region((1, 10, 10), [(0, 2, 3), (0, 4, 5)], margin=(0, 1, 1))
    (slice(0, 1, None), slice(1, 6, None), slice(2, 7, None))
    """
    pts = np.asarray(points, float)
    if pts.ndim != 2 or pts.shape[0] == 0 or pts.shape[1] != 3:
        raise ValueError(f"points must be (N >= 1, 3) voxel coordinates, got {pts.shape}")
    m = np.ceil(np.asarray(margin, float) - 1e-9)
    lo = np.floor(pts.min(0) + 0.5 - m).astype(int)
    hi = np.floor(pts.max(0) + 0.5 + m).astype(int) + 1
    out = []
    for a, b, n in zip(lo, hi, shape, strict=True):
        a = min(max(int(a), 0), n - 1)
        b = max(min(int(b), n), a + 1)
        out.append(slice(a, b))
    return out[0], out[1], out[2]


def pick_class(
    probabilities: np.ndarray, region: Region, *, within: np.ndarray | None = None
) -> tuple[int, list[float]]:
    """The foreground class with the most probability mass in ``region``.

    Parameters
    ----------
    probabilities
        Softmax probabilities ``(classes, planes, rows, columns)``; class 0 is the
        background and is never picked.
    region
        Where to weigh the classes (the user's box).
    within
        Optional boolean mask of the image's spatial shape: only its voxels inside the
        region count (e.g. a mask to refine).

    Returns
    -------
    index, masses
        The class index (>= 1) and the summed probability of every class in the region
        (background included), in class order. With no foreground mass at all, class 1.

    Examples
    --------
    >>> p = np.zeros((3, 1, 4, 4), np.float32); p[0] = 1
    >>> p[:, 0, :2, :2] = [[[0]], [[1]], [[0]]]; p[:, 0, 2:, 2:] = [[[0]], [[0]], [[1]]]
    >>> pick_class(p, (slice(0, 1), slice(2, 4), slice(2, 4)))[0]
    2
    """
    _validate_inputs(probabilities, region)
    crop = probabilities[(slice(None), *region)].astype(np.float32)
    if within is not None:
        crop = crop * np.asarray(within, bool)[region][np.newaxis]
    masses = [float(v) for v in crop.reshape(crop.shape[0], -1).sum(axis=1)]
    index = 1 + int(np.argmax(masses[1:]))
    return index, masses


def class_logits(probabilities: np.ndarray, index: int, region: Region) -> np.ndarray:
    """Log-odds of class ``index`` against its strongest rival over ``region``.

    ``log(p_k / max_{j != k} p_j)``: positive exactly where the class is the model's
    answer (its arg-max), so two touching structures share no voxel and leave none to
    neither; with two classes it is the usual ``log(p / (1 - p))``.

    Parameters
    ----------
    probabilities
        Softmax probabilities ``(classes, planes, rows, columns)``.
    index
        The class.
    region
        The voxels to return.

    Returns
    -------
    np.ndarray
        float32 of the region's shape; probabilities are clipped to ``[EPS, 1 - EPS]``
        first, so values lie within about ±9.2.

    Raises
    ------
    ValueError
        A class index out of range, or probabilities that are not 4D.

    Examples
    --------
    >>> p = np.array([[0.9, 0.2], [0.1, 0.8]], np.float32).reshape(2, 1, 1, 2)
    >>> (class_logits(p, 1, (slice(0, 1), slice(0, 1), slice(0, 2))) > 0).tolist()
    [[[False, True]]]
    """
    _validate_inputs(probabilities, region)
    if not 0 <= index < probabilities.shape[0]:
        raise ValueError(f"class {index} is outside 0..{probabilities.shape[0] - 1}")
    crop = np.clip(probabilities[(slice(None), *region)].astype(np.float32), EPS, 1 - EPS)
    own = crop[index]
    rival = np.delete(crop, index, axis=0).max(axis=0)
    out: np.ndarray = (np.log(own) - np.log(rival)).astype(np.float32)
    return out


def mask_region(mask: np.ndarray) -> list[tuple[float, float, float]]:
    """The two corners of a boolean mask's bounding box (empty list for an empty mask).

    Examples
    --------
    >>> m = np.zeros((1, 5, 5), bool); m[0, 1:3, 2:4] = True
    >>> mask_region(m)
    [(0.0, 1.0, 2.0), (0.0, 2.0, 3.0)]
    """
    idx = np.argwhere(np.asarray(mask, bool))
    if len(idx) == 0:
        return []
    lo, hi = idx.min(0), idx.max(0)
    return [
        (float(lo[0]), float(lo[1]), float(lo[2])),
        (float(hi[0]), float(hi[1]), float(hi[2])),
    ]
