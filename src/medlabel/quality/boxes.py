"""Detection metrics for boxes: IoU, one-to-one matching, precision/recall/F1 at an IoU
threshold, and average precision (AP) over scored predictions.

Boxes are corner coordinates ``[x0, y0, x1, y1]`` (2D) or ``[x0, y0, z0, x1, y1, z1]``
(3D) with ``x1 >= x0`` etc., in any unit (pixels or mm, the same for all boxes). A box's
size is ``(x1 - x0) (y1 - y0) [(z1 - z0)]`` (continuous coordinates, COCO's convention;
no ``+ 1``). Matching is greedy as in COCO: predictions in decreasing score, each taking
the still unmatched reference box it overlaps most, if that IoU is at least the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt


def _as_boxes(boxes: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=float)
    if arr.size == 0:
        width = arr.shape[-1] if arr.ndim == 2 else 0
        return arr.reshape(0, width)
    if arr.ndim == 1:
        arr = arr[np.newaxis]
    if arr.ndim != 2 or arr.shape[1] not in (4, 6):
        raise ValueError(
            f"{name} must be (n, 4) 2D or (n, 6) 3D corner boxes, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} coordinates must be finite")
    d = arr.shape[1] // 2
    if np.any(arr[:, d:] < arr[:, :d]):
        bad = int(np.flatnonzero(np.any(arr[:, d:] < arr[:, :d], axis=1))[0])
        raise ValueError(
            f"{name}[{bad}] = {arr[bad].tolist()}: upper corner below lower corner "
            "(expected [x0, y0, (z0,) x1, y1, (z1)])"
        )
    return arr


def _validate_inputs(a: npt.ArrayLike, b: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    boxes_a = _as_boxes(a, "boxes_a")
    boxes_b = _as_boxes(b, "boxes_b")
    widths = {x.shape[1] for x in (boxes_a, boxes_b) if x.shape[1]}
    if len(widths) > 1:
        raise ValueError(
            f"boxes must all be 2D or all 3D; got shapes {boxes_a.shape} and {boxes_b.shape}"
        )
    return boxes_a, boxes_b


def box_iou(boxes_a: npt.ArrayLike, boxes_b: npt.ArrayLike) -> np.ndarray:
    """Intersection over union of every pair of boxes.

    Parameters
    ----------
    boxes_a, boxes_b
        ``(n, 4)`` / ``(m, 4)`` 2D or ``(n, 6)`` / ``(m, 6)`` 3D corner boxes; one box
        may be given as a 1D array.

    Returns
    -------
    numpy.ndarray
        ``(n, m)`` IoUs in ``[0, 1]``; a pair whose union has zero size (two degenerate
        boxes) has IoU 0.0.

    Raises
    ------
    ValueError
        Wrong shapes, a mix of 2D and 3D boxes, or an upper corner below a lower one.

    Examples
    --------
    >>> box_iou([0, 0, 2, 2], [[1, 0, 3, 2], [5, 5, 6, 6]])
    array([[0.33333333, 0.        ]])
    >>> box_iou([0, 0, 0, 2, 2, 2], [1, 1, 1, 3, 3, 3]).round(4)
    array([[0.0667]])
    """
    a, b = _validate_inputs(boxes_a, boxes_b)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    d = a.shape[1] // 2
    lo = np.maximum(a[:, None, :d], b[None, :, :d])
    hi = np.minimum(a[:, None, d:], b[None, :, d:])
    inter = np.clip(hi - lo, 0.0, None).prod(axis=2)
    size_a = (a[:, d:] - a[:, :d]).prod(axis=1)
    size_b = (b[:, d:] - b[:, :d]).prod(axis=1)
    union = size_a[:, None] + size_b[None, :] - inter
    out: np.ndarray = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


@dataclass(frozen=True)
class BoxMatching:
    """One-to-one matching of predicted to reference boxes.

    Attributes
    ----------
    pairs
        ``(prediction index, reference index, IoU)`` of each match, in the order the
        predictions were taken (decreasing score).
    unmatched_predictions
        Indices of false-positive predictions, ascending.
    unmatched_references
        Indices of missed reference boxes, ascending.
    """

    pairs: tuple[tuple[int, int, float], ...]
    unmatched_predictions: tuple[int, ...]
    unmatched_references: tuple[int, ...]


def _scores(scores: npt.ArrayLike | None, n: int) -> np.ndarray:
    if scores is None:
        return np.zeros(n)
    s = np.asarray(scores, dtype=float).reshape(-1)
    if s.shape != (n,):
        raise ValueError(f"need one score per predicted box: {n} boxes, {s.size} scores")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s


def _threshold(iou_threshold: float) -> float:
    t = float(iou_threshold)
    if not 0.0 < t <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    return t


def match_boxes(
    predictions: npt.ArrayLike,
    references: npt.ArrayLike,
    scores: npt.ArrayLike | None = None,
    *,
    iou_threshold: float = 0.5,
) -> BoxMatching:
    """Greedy one-to-one matching by score (COCO's rule).

    Predictions are taken in decreasing score (ties: in the given order); each is matched
    to the unmatched reference box with the highest IoU, if that IoU is
    ``>= iou_threshold`` (ties: the first reference box).

    Parameters
    ----------
    predictions, references
        Corner boxes (see :func:`box_iou`).
    scores
        One confidence per prediction; ``None`` keeps the given order.
    iou_threshold
        In ``(0, 1]``.

    Returns
    -------
    BoxMatching

    Raises
    ------
    ValueError
        Bad boxes, a score count that differs from the number of predictions, or a
        threshold outside ``(0, 1]``.

    Examples
    --------
    >>> ref = [[0, 0, 10, 10], [20, 20, 30, 30]]
    >>> pred = [[1, 1, 10, 10], [0, 0, 9, 10], [50, 50, 60, 60]]
    >>> m = match_boxes(pred, ref, scores=[0.6, 0.9, 0.8])
    >>> m.pairs, m.unmatched_predictions, m.unmatched_references
    (((1, 0, 0.9),), (0, 2), (1,))
    """
    pred, ref = _validate_inputs(predictions, references)
    s = _scores(scores, pred.shape[0])
    thr = _threshold(iou_threshold)
    ious = box_iou(pred, ref)
    taken = np.zeros(ref.shape[0], bool)
    pairs: list[tuple[int, int, float]] = []
    matched_pred: set[int] = set()
    for i in np.argsort(-s, kind="mergesort").tolist():
        if ref.shape[0] == 0:
            break
        candidates = np.where(taken, -1.0, ious[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= thr:
            taken[j] = True
            matched_pred.add(i)
            pairs.append((i, j, float(ious[i, j])))
    return BoxMatching(
        pairs=tuple(pairs),
        unmatched_predictions=tuple(i for i in range(pred.shape[0]) if i not in matched_pred),
        unmatched_references=tuple(int(j) for j in np.flatnonzero(~taken)),
    )


@dataclass(frozen=True)
class DetectionMetrics:
    """Counts and rates of a matching at one IoU threshold.

    Attributes
    ----------
    tp, fp, fn
        Matched predictions, unmatched predictions, missed reference boxes.
    precision, recall, f1
        ``TP / (TP + FP)``, ``TP / (TP + FN)``, ``2 TP / (2 TP + FP + FN)``; 1.0 when the
        denominator is zero (no prediction, no reference: nothing was wrong).
    iou_threshold
        The threshold used.
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    iou_threshold: float


def detection_metrics(
    predictions: npt.ArrayLike,
    references: npt.ArrayLike,
    scores: npt.ArrayLike | None = None,
    *,
    iou_threshold: float = 0.5,
) -> DetectionMetrics:
    """TP/FP/FN, precision, recall and F1 of one image's boxes at ``iou_threshold``.

    Empty cases: no predictions and no references give 1.0 everywhere; references but no
    predictions give precision 1.0, recall 0.0, F1 0.0; predictions but no references give
    precision 0.0, recall 1.0, F1 0.0.

    Examples
    --------
    >>> ref = [[0, 0, 10, 10], [20, 20, 30, 30]]
    >>> pred = [[1, 1, 10, 10], [50, 50, 60, 60]]
    >>> detection_metrics(pred, ref)
    DetectionMetrics(tp=1, fp=1, fn=1, precision=0.5, recall=0.5, f1=0.5, iou_threshold=0.5)
    """
    m = match_boxes(predictions, references, scores, iou_threshold=iou_threshold)
    tp, fp, fn = len(m.pairs), len(m.unmatched_predictions), len(m.unmatched_references)
    return DetectionMetrics(
        tp=tp,
        fp=fp,
        fn=fn,
        precision=tp / (tp + fp) if tp + fp else 1.0,
        recall=tp / (tp + fn) if tp + fn else 1.0,
        f1=2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
        iou_threshold=float(iou_threshold),
    )


Interpolation = Literal["coco101", "all_points"]


def _per_image(x: npt.ArrayLike | Sequence[npt.ArrayLike], single_ndim: int) -> list[np.ndarray]:
    """One image's array (``single_ndim`` dimensions), or a sequence of per-image
    arrays, as a list of per-image arrays."""
    try:
        arr = np.asarray(x, dtype=float)
    except ValueError:  # ragged: one entry per image
        return [np.asarray(v, dtype=float) for v in x]  # type: ignore[union-attr]
    if arr.ndim == single_ndim + 1 or (single_ndim == 2 and arr.ndim == 2 and arr.shape[1] == 0):
        return list(arr)
    if arr.ndim == single_ndim or (arr.size == 0 and arr.ndim < single_ndim):
        return [arr]
    raise ValueError(
        f"expected one image's array with {single_ndim} dimensions or a sequence of them, "
        f"got shape {arr.shape}"
    )


def average_precision(
    predictions: npt.ArrayLike | Sequence[npt.ArrayLike],
    scores: npt.ArrayLike | Sequence[npt.ArrayLike],
    references: npt.ArrayLike | Sequence[npt.ArrayLike],
    *,
    iou_threshold: float = 0.5,
    interpolation: Interpolation = "coco101",
) -> float:
    """Average precision of scored predictions over one or several images.

    Predictions are matched per image (:func:`match_boxes`); then all predictions of all
    images are sorted by decreasing score (ties: image order, then score order) and
    precision and recall computed at each rank. The precision envelope
    ``p̂(r) = max_{r' >= r} p(r')`` is then averaged:

    * ``"coco101"`` (default): at the 101 recalls ``0, 0.01, ..., 1`` (pycocotools'
      ``COCOeval``; a recall never reached counts 0), so AP50 equals COCO's ``AP@0.5``
      for one class with no crowd boxes, no area range and no detection limit;
    * ``"all_points"``: exact area under the envelope, ``Σ (r_k - r_{k-1}) p̂(r_k)``
      (PASCAL VOC 2010+).

    Parameters
    ----------
    predictions, scores, references
        For one image: ``(n, 4|6)`` boxes, ``(n,)`` scores, ``(m, 4|6)`` boxes. For several:
        sequences of those, one entry per image.
    iou_threshold
        Matching threshold (0.5 gives AP50).
    interpolation
        ``"coco101"`` or ``"all_points"``.

    Returns
    -------
    float
        In ``[0, 1]``. With no reference box at all: 1.0 if there is no prediction
        either, 0.0 otherwise (pycocotools reports -1 there).

    Raises
    ------
    ValueError
        Per-image lists of different lengths, bad boxes or scores, unknown interpolation.

    Examples
    --------
    >>> ref = [[0, 0, 10, 10], [20, 20, 30, 30]]
    >>> pred = [[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 31]]
    >>> average_precision(pred, [0.9, 0.8, 0.7], ref, interpolation="all_points")
    0.8333333333333333
    >>> round(average_precision(pred, [0.9, 0.8, 0.7], ref), 4)
    0.835
    """
    if interpolation not in ("coco101", "all_points"):
        raise ValueError(f"interpolation must be 'coco101' or 'all_points', got {interpolation!r}")
    preds = _per_image(predictions, 2)
    score_list = _per_image(scores, 1)
    refs = _per_image(references, 2)
    if not len(preds) == len(score_list) == len(refs):
        raise ValueError(
            f"need one entry per image in each list: {len(preds)} prediction sets, "
            f"{len(score_list)} score sets, {len(refs)} reference sets"
        )
    all_scores: list[np.ndarray] = []
    all_tp: list[np.ndarray] = []
    n_ref = 0
    for p, s, r in zip(preds, score_list, refs, strict=True):
        pb = _as_boxes(p, "predictions")
        rb = _as_boxes(r, "references")
        sv = _scores(s, pb.shape[0])
        m = match_boxes(pb, rb, sv, iou_threshold=iou_threshold)
        order = np.argsort(-sv, kind="mergesort")
        tp = np.zeros(pb.shape[0], bool)
        tp[[i for i, _, _ in m.pairs]] = True
        all_scores.append(sv[order])
        all_tp.append(tp[order])
        n_ref += rb.shape[0]
    s_cat = np.concatenate(all_scores) if all_scores else np.zeros(0)
    tp_cat = np.concatenate(all_tp) if all_tp else np.zeros(0, bool)
    if n_ref == 0:
        return 1.0 if s_cat.size == 0 else 0.0
    if s_cat.size == 0:
        return 0.0
    order = np.argsort(-s_cat, kind="mergesort")
    tp_sorted = tp_cat[order]
    ctp = np.cumsum(tp_sorted)
    cfp = np.cumsum(~tp_sorted)
    recall = ctp / n_ref
    precision = ctp / (ctp + cfp)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    if interpolation == "coco101":
        grid = np.linspace(0.0, 1.0, 101)
        idx = np.searchsorted(recall, grid, side="left")
        values = np.where(idx < recall.size, envelope[np.minimum(idx, recall.size - 1)], 0.0)
        return float(values.mean())
    steps = np.diff(np.r_[0.0, recall])
    return float((steps * envelope).sum())
