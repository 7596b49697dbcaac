"""Consensus of boxes and points: group the readers' marks of the same object.

Each reader contributes at most one mark to a group (two boxes of one reader are two
objects). Groups are seeded by the mark the other readers agree with most, then every
other reader adds their best-matching free mark if it is close enough. The consensus mark
is the coordinate-wise median of the group; a group is kept when more than ``min_share``
of the readers (by weight) contributed to it, and reported as ``tied`` at exactly that
share so a reviewer can decide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medlabel.quality.boxes import box_iou


@dataclass(frozen=True)
class MarkCluster:
    """One object as the readers marked it.

    Attributes
    ----------
    mark
        Consensus coordinates: box corners ``[lo..., hi...]`` or a point.
    members
        ``(reader, index of the mark in that reader's list)`` of each member.
    share
        Weighted share of readers who marked it, in ``[0, 1]``.
    chosen, tied
        Kept in the consensus (share above ``min_share``), or exactly at it.
    """

    mark: np.ndarray
    members: tuple[tuple[int, int], ...]
    share: float
    chosen: bool
    tied: bool


def _as_marks(per_reader: Sequence[npt.ArrayLike], width: int | None) -> list[np.ndarray]:
    out = []
    for i, marks in enumerate(per_reader):
        arr = np.asarray(marks, dtype=np.float64)
        if arr.size == 0:
            arr = arr.reshape(0, width or 0)
        elif arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2:
            raise ValueError(f"reader {i}: marks must be a (n, d) array; got shape {arr.shape}")
        out.append(arr)
    widths = {a.shape[1] for a in out if a.shape[0]}
    if len(widths) > 1:
        raise ValueError(f"all marks must have the same number of coordinates; got {widths}")
    common = widths.pop() if widths else width or 0
    return [a if a.shape[0] else a.reshape(0, common) for a in out]


def _cluster(
    marks: list[np.ndarray],
    affinity: Callable[[np.ndarray, np.ndarray], np.ndarray],
    close: Callable[[np.ndarray], np.ndarray],
    weights: Sequence[float] | None,
    min_share: float,
) -> list[MarkCluster]:
    n = len(marks)
    if n < 2:
        raise ValueError(f"a consensus needs at least two readers; got {n}")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError(f"give {n} non-negative reader weights, not all zero")
    if not 0.0 <= min_share < 1.0:
        raise ValueError(f"min_share must lie in [0, 1); got {min_share}")
    aff = {(r, q): affinity(marks[r], marks[q]) for r in range(n) for q in range(n) if r != q}
    # seed order: marks that the other readers agree with most come first
    seeds = []
    for r in range(n):
        for i in range(marks[r].shape[0]):
            agreeing, strength = 0, 0.0
            for q in range(n):
                if q == r or not marks[q].shape[0]:
                    continue
                row = aff[r, q][i]
                if close(row).any():
                    agreeing += 1
                    strength += float(np.max(row[close(row)]))
            seeds.append((-agreeing, -strength, r, i))
    seeds.sort()
    free = [np.ones(m.shape[0], bool) for m in marks]
    clusters = []
    for _, _, r, i in seeds:
        if not free[r][i]:
            continue
        free[r][i] = False
        members = [(r, i)]
        for q in range(n):
            if q == r or not marks[q].shape[0]:
                continue
            row = aff[r, q][i]
            ok = close(row) & free[q]
            if ok.any():
                j = int(np.argmax(np.where(ok, row, -np.inf)))
                free[q][j] = False
                members.append((q, j))
        members.sort()
        share = float(sum(w[q] for q, _ in members) / w.sum())
        tied = bool(np.isclose(share, min_share))
        mark = np.median(np.stack([marks[q][j] for q, j in members]), axis=0)
        clusters.append(
            MarkCluster(mark, tuple(members), share, share > min_share and not tied, tied)
        )
    return clusters


def cluster_boxes(
    per_reader: Sequence[npt.ArrayLike],
    *,
    iou_threshold: float = 0.5,
    weights: Sequence[float] | None = None,
    min_share: float = 0.5,
) -> list[MarkCluster]:
    """Group the readers' boxes of one label into objects.

    Parameters
    ----------
    per_reader
        Per reader, an ``(n, 4)`` or ``(n, 6)`` array of corner boxes (see
        :func:`medlabel.quality.boxes.box_iou`); ``n`` may be 0.
    iou_threshold
        Boxes of two readers belong to one object when their IoU is at least this.
    weights
        One non-negative weight per reader (default: equal).
    min_share
        A group is chosen when its readers' weighted share exceeds this.

    Returns
    -------
    list of MarkCluster
        Strongest agreement first; each ``mark`` is the median box.

    Examples
    --------
    >>> a = [[0, 0, 10, 10]]
    >>> b = [[1, 0, 11, 10], [40, 40, 50, 50]]
    >>> c = [[0, 1, 10, 11]]
    >>> [(cl.mark.tolist(), len(cl.members), cl.chosen) for cl in cluster_boxes([a, b, c])]
    [([0.0, 0.0, 10.0, 10.0], 3, True), ([40.0, 40.0, 50.0, 50.0], 1, False)]
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1]; got {iou_threshold}")
    marks = _as_marks(per_reader, 4)
    return _cluster(marks, box_iou, lambda row: row >= iou_threshold, weights, min_share)


def cluster_points(
    per_reader: Sequence[npt.ArrayLike],
    *,
    radius: float,
    weights: Sequence[float] | None = None,
    min_share: float = 0.5,
) -> list[MarkCluster]:
    """Group the readers' landmarks of one label: points of two readers within ``radius``
    (in the points' unit, e.g. mm) mark the same spot.

    Examples
    --------
    >>> cl = cluster_points([[[0, 0, 0]], [[0, 1, 0]], []], radius=2.0)
    >>> cl[0].mark.tolist(), round(cl[0].share, 3), cl[0].chosen
    ([0.0, 0.5, 0.0], 0.667, True)
    """
    if radius <= 0:
        raise ValueError(f"radius must be positive; got {radius}")
    marks = _as_marks(per_reader, 3)

    def closeness(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
        return np.asarray(-d)  # larger is closer

    return _cluster(marks, closeness, lambda row: row >= -radius, weights, min_share)
