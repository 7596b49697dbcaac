"""Overlap between two binary masks: Dice, IoU, volume similarity and the voxel-wise
confusion counts with the rates derived from them.

Every function takes masks of the same shape (any number of dimensions; non-zero means
inside) and, where it counts voxels, an optional ``roi`` mask: only voxels inside the
region of interest count (as true/false positives *and* negatives).

Empty masks have defined results (see ``docs/metrics.md``): two empty masks agree
perfectly (Dice, IoU, volume similarity 1.0), one empty mask scores 0.0. A rate whose
denominator is zero (sensitivity when the reference is empty, precision when the
prediction is empty, ...) is ``zero_division``, by default 1.0: there was no case to get
wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


def _validate_inputs(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"masks must have the same shape; got {a.shape} and {b.shape}")


def _masks(
    a: npt.ArrayLike, b: npt.ArrayLike, roi: npt.ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    a_arr = np.asarray(a)
    b_arr = np.asarray(b)
    a_arr = a_arr if a_arr.dtype == bool else a_arr != 0
    b_arr = b_arr if b_arr.dtype == bool else b_arr != 0
    _validate_inputs(a_arr, b_arr)
    if roi is None:
        return a_arr, b_arr, None
    roi_arr = np.asarray(roi)
    roi_arr = roi_arr if roi_arr.dtype == bool else roi_arr != 0
    if roi_arr.shape != a_arr.shape:
        raise ValueError(
            f"roi must have the masks' shape; got roi {roi_arr.shape} and masks {a_arr.shape}"
        )
    return a_arr & roi_arr, b_arr & roi_arr, roi_arr


def _ratio(num: float, den: float, zero_division: float) -> float:
    return float(num) / float(den) if den else float(zero_division)


@dataclass(frozen=True)
class ConfusionCounts:
    """Voxel counts of a predicted mask against a reference mask.

    Attributes
    ----------
    tp, fp, fn, tn
        True positives (in both), false positives (predicted only), false negatives
        (reference only) and true negatives (in neither), counted inside the ROI.
    """

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def total(self) -> int:
        """Number of voxels counted (the ROI's size, or the whole array's)."""
        return self.tp + self.fp + self.fn + self.tn

    def sensitivity(self, zero_division: float = 1.0) -> float:
        """``TP / (TP + FN)`` (recall, true positive rate)."""
        return _ratio(self.tp, self.tp + self.fn, zero_division)

    def specificity(self, zero_division: float = 1.0) -> float:
        """``TN / (TN + FP)`` (true negative rate)."""
        return _ratio(self.tn, self.tn + self.fp, zero_division)

    def precision(self, zero_division: float = 1.0) -> float:
        """``TP / (TP + FP)`` (positive predictive value)."""
        return _ratio(self.tp, self.tp + self.fp, zero_division)

    def f1(self, zero_division: float = 1.0) -> float:
        """``2 TP / (2 TP + FP + FN)``; on masks this equals the Dice coefficient."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn, zero_division)

    def accuracy(self, zero_division: float = 1.0) -> float:
        """``(TP + TN) / (TP + FP + FN + TN)``."""
        return _ratio(self.tp + self.tn, self.total, zero_division)


def confusion_counts(
    pred: npt.ArrayLike, ref: npt.ArrayLike, roi: npt.ArrayLike | None = None
) -> ConfusionCounts:
    """Voxel-wise true/false positives/negatives of ``pred`` against ``ref``.

    Parameters
    ----------
    pred, ref
        Predicted and reference masks of the same shape; non-zero means inside.
    roi
        Optional mask of the same shape: only voxels inside it are counted.

    Returns
    -------
    ConfusionCounts
        ``tp, fp, fn, tn``; its methods give the rates.

    Raises
    ------
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> ref = np.array([1, 1, 1, 0, 0, 0])
    >>> pred = np.array([1, 1, 0, 1, 0, 0])
    >>> confusion_counts(pred, ref)
    ConfusionCounts(tp=2, fp=1, fn=1, tn=2)
    >>> confusion_counts(pred, ref, roi=[1, 1, 1, 1, 0, 0])
    ConfusionCounts(tp=2, fp=1, fn=1, tn=0)
    """
    p, r, roi_arr = _masks(pred, ref, roi)
    tp = int(np.count_nonzero(p & r))
    n_pred = int(np.count_nonzero(p))
    n_ref = int(np.count_nonzero(r))
    total = int(np.count_nonzero(roi_arr)) if roi_arr is not None else int(p.size)
    fp, fn = n_pred - tp, n_ref - tp
    return ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=total - tp - fp - fn)


def dice(a: npt.ArrayLike, b: npt.ArrayLike, roi: npt.ArrayLike | None = None) -> float:
    """Dice similarity coefficient ``2 |A ∩ B| / (|A| + |B|)`` of two binary masks.

    Parameters
    ----------
    a, b
        Masks of the same shape (any number of dimensions); non-zero means inside.
    roi
        Optional mask: only voxels inside it count.

    Returns
    -------
    float
        In ``[0, 1]``; ``1.0`` when both masks are empty (they agree that nothing is
        there), ``0.0`` when exactly one is empty.

    Raises
    ------
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> dice(a, b)
    0.5
    >>> dice(np.zeros(3), np.zeros(3))
    1.0
    """
    a_arr, b_arr, _ = _masks(a, b, roi)
    total = int(np.count_nonzero(a_arr)) + int(np.count_nonzero(b_arr))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(a_arr & b_arr)) / total


def iou(a: npt.ArrayLike, b: npt.ArrayLike, roi: npt.ArrayLike | None = None) -> float:
    """Intersection over union (Jaccard index) ``|A ∩ B| / |A ∪ B|``.

    Related to Dice by ``IoU = D / (2 - D)``.

    Parameters
    ----------
    a, b
        Masks of the same shape; non-zero means inside.
    roi
        Optional mask: only voxels inside it count.

    Returns
    -------
    float
        In ``[0, 1]``; ``1.0`` when both masks are empty, ``0.0`` when exactly one is.

    Raises
    ------
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> round(iou(a, b), 4)
    0.3333
    """
    a_arr, b_arr, _ = _masks(a, b, roi)
    union = int(np.count_nonzero(a_arr | b_arr))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(a_arr & b_arr)) / union


def volume_similarity(
    a: npt.ArrayLike, b: npt.ArrayLike, roi: npt.ArrayLike | None = None
) -> float:
    """Volume similarity ``1 - | |A| - |B| | / (|A| + |B|)``.

    It compares sizes only (two disjoint masks of equal size score 1.0), as
    ``1 - |FN - FP| / (2 TP + FP + FN)`` in Taha & Hanbury (2015). SimpleITK's
    ``LabelOverlapMeasuresImageFilter.GetVolumeSimilarity`` is the signed
    ``2 (|A| - |B|) / (|A| + |B|)``; this is ``1 - |that| / 2``.

    Parameters
    ----------
    a, b
        Masks of the same shape; non-zero means inside.
    roi
        Optional mask: only voxels inside it count.

    Returns
    -------
    float
        In ``[0, 1]``; ``1.0`` when both masks are empty, ``0.0`` when exactly one is.

    Raises
    ------
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> volume_similarity([1, 1, 1, 0], [0, 0, 1, 0])
    0.5
    """
    a_arr, b_arr, _ = _masks(a, b, roi)
    na, nb = int(np.count_nonzero(a_arr)), int(np.count_nonzero(b_arr))
    if na + nb == 0:
        return 1.0
    return 1.0 - abs(na - nb) / (na + nb)


def sensitivity(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    roi: npt.ArrayLike | None = None,
    *,
    zero_division: float = 1.0,
) -> float:
    """Sensitivity (recall) ``TP / (TP + FN)``: the share of the reference found.

    ``zero_division`` (default 1.0) when the reference is empty.

    Examples
    --------
    >>> sensitivity([1, 1, 0, 0], [1, 0, 1, 0])
    0.5
    >>> sensitivity([1, 0], [0, 0])
    1.0
    """
    return confusion_counts(pred, ref, roi).sensitivity(zero_division)


def specificity(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    roi: npt.ArrayLike | None = None,
    *,
    zero_division: float = 1.0,
) -> float:
    """Specificity ``TN / (TN + FP)``: the share of the background kept out.

    ``zero_division`` (default 1.0) when every counted voxel is in the reference.

    Examples
    --------
    >>> specificity([1, 1, 0, 0], [1, 0, 1, 0])
    0.5
    """
    return confusion_counts(pred, ref, roi).specificity(zero_division)


def precision(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    roi: npt.ArrayLike | None = None,
    *,
    zero_division: float = 1.0,
) -> float:
    """Precision (positive predictive value) ``TP / (TP + FP)``.

    ``zero_division`` (default 1.0) when the prediction is empty.

    Examples
    --------
    >>> precision([1, 1, 1, 0], [1, 0, 0, 0])
    0.3333333333333333
    """
    return confusion_counts(pred, ref, roi).precision(zero_division)


def f1_score(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    roi: npt.ArrayLike | None = None,
    *,
    zero_division: float = 1.0,
) -> float:
    """F1 ``2 TP / (2 TP + FP + FN)``, the harmonic mean of precision and sensitivity;
    on masks it equals :func:`dice`.

    ``zero_division`` (default 1.0) when both masks are empty.

    Examples
    --------
    >>> f1_score([1, 1, 0, 0], [1, 0, 1, 0])
    0.5
    """
    return confusion_counts(pred, ref, roi).f1(zero_division)


def accuracy(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    roi: npt.ArrayLike | None = None,
    *,
    zero_division: float = 1.0,
) -> float:
    """Accuracy ``(TP + TN) / N``, the share of counted voxels labelled correctly.

    Dominated by the background on small structures; prefer Dice. ``zero_division``
    (default 1.0) when nothing is counted (an empty ``roi``).

    Examples
    --------
    >>> accuracy([1, 1, 0, 0], [1, 0, 1, 0])
    0.5
    """
    return confusion_counts(pred, ref, roi).accuracy(zero_division)
