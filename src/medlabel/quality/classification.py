"""Classification and rater-agreement metrics: confusion matrix, per-class and macro
sensitivity/specificity/precision/F1, accuracy, ROC curve and AUC, Cohen's and Fleiss'
kappa.

Labels are any hashable, sortable values (ints, strings). Conventions follow
scikit-learn where it has the metric (confusion matrix rows are the truth, columns the
prediction; a per-class rate with a zero denominator is ``zero_division``, 0.0 by default),
so the numbers can be compared with it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt


def _validate_inputs(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"expected two 1D arrays of labels, got shapes {t.shape} and {p.shape}")
    if t.shape != p.shape:
        raise ValueError(f"label arrays must have the same length; got {t.shape} and {p.shape}")
    return t, p


def _labels(t: np.ndarray, p: np.ndarray, labels: Sequence[Hashable] | None) -> list[Hashable]:
    if labels is not None:
        out = list(labels)
        if len(set(out)) != len(out):
            raise ValueError(f"labels must be distinct, got {out}")
        if not out:
            raise ValueError("labels must not be empty")
        return out
    return [v.item() if hasattr(v, "item") else v for v in np.unique(np.concatenate([t, p]))]


def _encode(values: np.ndarray, order: list[Hashable]) -> np.ndarray:
    """Position of each value in ``order``, -1 for values not in it."""
    labels = np.asarray(order)
    if labels.dtype != object and values.dtype != object:
        try:
            sorter = np.argsort(labels, kind="stable")
            pos = np.clip(np.searchsorted(labels, values, sorter=sorter), 0, len(order) - 1)
            idx = sorter[pos]
            return np.where(labels[idx] == values, idx, -1).astype(np.int64)
        except TypeError:  # values and labels not comparable: fall back to a lookup
            pass
    index = {label: i for i, label in enumerate(order)}
    keys = [v.item() if hasattr(v, "item") else v for v in values]
    return np.array([index.get(key, -1) for key in keys], np.int64)


def confusion_matrix(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, labels: Sequence[Hashable] | None = None
) -> np.ndarray:
    """Counts of each (true, predicted) label pair.

    Parameters
    ----------
    y_true, y_pred
        1D arrays of the same length.
    labels
        Row/column order; by default every label seen in either array, sorted. Samples
        whose labels are not listed are left out.

    Returns
    -------
    numpy.ndarray
        ``(n_labels, n_labels)`` int64; ``[i, j]`` counts samples of true label ``i``
        predicted as ``j`` (scikit-learn's layout).

    Raises
    ------
    ValueError
        If the arrays are not 1D of one length, or ``labels`` repeats a value.

    Examples
    --------
    >>> confusion_matrix(["cat", "dog", "dog", "cat"], ["cat", "dog", "cat", "cat"])
    array([[2, 0],
           [1, 1]])
    """
    t, p = _validate_inputs(y_true, y_pred)
    order = _labels(t, p, labels)
    k = len(order)
    ti, pi = _encode(t, order), _encode(p, order)
    keep = (ti >= 0) & (pi >= 0)
    flat = np.bincount(ti[keep] * k + pi[keep], minlength=k * k)
    return flat.reshape(k, k).astype(np.int64)


@dataclass(frozen=True)
class ClassMetrics:
    """One-vs-rest rates of one class (or their macro average).

    Attributes
    ----------
    sensitivity
        Recall, ``TP / (TP + FN)``.
    specificity
        ``TN / (TN + FP)``.
    precision
        ``TP / (TP + FP)``.
    f1
        ``2 TP / (2 TP + FP + FN)``.
    support
        Number of samples of the class in ``y_true`` (the total for a macro average).
    """

    sensitivity: float
    specificity: float
    precision: float
    f1: float
    support: int


def _rate(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    out = np.full(num.shape, float(zero_division))
    np.divide(num, den, out=out, where=den > 0)
    return out


def class_metrics(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    labels: Sequence[Hashable] | None = None,
    *,
    zero_division: float = 0.0,
) -> dict[Hashable, ClassMetrics]:
    """Per-class (one-vs-rest) sensitivity, specificity, precision and F1.

    Parameters
    ----------
    y_true, y_pred
        1D arrays of the same length.
    labels
        Classes to report, in order (default: every label seen, sorted).
    zero_division
        Value of a rate whose denominator is zero (e.g. precision of a class never
        predicted); 0.0 as scikit-learn's ``zero_division=0``.

    Returns
    -------
    dict
        ``{label: ClassMetrics}``.

    Raises
    ------
    ValueError
        If the arrays are not 1D of one length.

    Examples
    --------
    >>> m = class_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0])
    >>> m[1].sensitivity, round(m[1].specificity, 4), round(m[1].precision, 4), m[1].f1
    (1.0, 0.6667, 0.6667, 0.8)
    >>> m[2].precision, m[2].f1
    (0.0, 0.0)
    """
    t, p = _validate_inputs(y_true, y_pred)
    order = _labels(t, p, labels)
    cm = confusion_matrix(t, p, order)
    tp = np.diag(cm).astype(float)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    sens = _rate(tp, tp + fn, zero_division)
    spec = _rate(tn, tn + fp, zero_division)
    prec = _rate(tp, tp + fp, zero_division)
    f1 = _rate(2 * tp, 2 * tp + fp + fn, zero_division)
    return {
        label: ClassMetrics(
            sensitivity=float(sens[i]),
            specificity=float(spec[i]),
            precision=float(prec[i]),
            f1=float(f1[i]),
            support=int(tp[i] + fn[i]),
        )
        for i, label in enumerate(order)
    }


def macro_metrics(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    labels: Sequence[Hashable] | None = None,
    *,
    zero_division: float = 0.0,
) -> ClassMetrics:
    """Unweighted mean over classes of :func:`class_metrics` (each class counts once,
    whatever its size); ``support`` is the total.

    The macro F1 is the mean of per-class F1 scores (scikit-learn's
    ``f1_score(average="macro")``), not the F1 of the mean precision and recall.

    Examples
    --------
    >>> m = macro_metrics([0, 0, 1, 1], [0, 1, 1, 1])
    >>> round(m.sensitivity, 4), round(m.precision, 4), m.support
    (0.75, 0.8333, 4)
    """
    per_class = list(class_metrics(y_true, y_pred, labels, zero_division=zero_division).values())
    return ClassMetrics(
        sensitivity=float(np.mean([m.sensitivity for m in per_class])),
        specificity=float(np.mean([m.specificity for m in per_class])),
        precision=float(np.mean([m.precision for m in per_class])),
        f1=float(np.mean([m.f1 for m in per_class])),
        support=sum(m.support for m in per_class),
    )


def accuracy_score(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Share of samples whose predicted label equals the true one; 1.0 for no samples.

    Examples
    --------
    >>> accuracy_score(["a", "b", "b"], ["a", "b", "a"])
    0.6666666666666666
    """
    t, p = _validate_inputs(y_true, y_pred)
    if t.size == 0:
        return 1.0
    return float(np.count_nonzero(t == p)) / t.size


@dataclass(frozen=True, eq=False)
class RocCurve:
    """ROC curve points, one per distinct score plus the origin.

    Attributes
    ----------
    fpr, tpr
        False and true positive rates, non-decreasing, from ``(0, 0)`` to ``(1, 1)``.
    thresholds
        ``thresholds[i]``: predicting positive when ``score >= thresholds[i]`` gives
        point ``i``; the first is ``inf`` (nothing positive).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


def _binary(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t, s = _validate_inputs(y_true, scores)
    values = set(np.unique(t).tolist())
    if not values <= {0, 1}:  # also covers False/True
        raise ValueError(f"y_true must be binary (0/1 or bool), got values {sorted(values)}")
    t = t.astype(bool)
    s = s.astype(float)
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    n_pos = int(t.sum())
    if n_pos == 0 or n_pos == t.size:
        raise ValueError(
            f"ROC needs both classes: got {n_pos} positive and {t.size - n_pos} negative "
            "samples; the curve and its AUC are undefined"
        )
    return t, s


def roc_curve(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> RocCurve:
    """Receiver operating characteristic of a binary score.

    Every distinct score is a threshold (no point is dropped, unlike scikit-learn's
    default ``drop_intermediate=True``); tied scores move the curve diagonally.

    Parameters
    ----------
    y_true
        1D binary truth (0/1 or bool), both classes present.
    scores
        1D finite scores of the same length, higher meaning more likely positive.

    Returns
    -------
    RocCurve

    Raises
    ------
    ValueError
        Lengths differ, ``y_true`` is not binary or has a single class, or a score is
        not finite.

    Examples
    --------
    >>> c = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> c.fpr.tolist(), c.tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    >>> c.thresholds.tolist()
    [inf, 0.8, 0.4, 0.35, 0.1]
    """
    t, s = _binary(y_true, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, t_sorted = s[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]  # end of each tie group
    tps = np.cumsum(t_sorted)[last]
    fps = (last + 1) - tps
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    return RocCurve(
        fpr=np.r_[0.0, fps / n_neg],
        tpr=np.r_[0.0, tps / n_pos],
        thresholds=np.r_[np.inf, s_sorted[last]],
    )


def roc_auc(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve, as the Mann-Whitney statistic.

    ``AUC = (R+ - n+ (n+ + 1) / 2) / (n+ n-)`` where ``R+`` is the sum of the positives'
    ranks among all scores (ties get their mean rank): the probability that a random
    positive scores higher than a random negative, ties counting one half. This equals
    the trapezoidal area under :func:`roc_curve`.

    Raises
    ------
    ValueError
        As :func:`roc_curve` (both classes are needed).

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> roc_auc([0, 1], [0.5, 0.5])
    0.5
    """
    t, s = _binary(y_true, scores)
    from scipy.stats import rankdata

    ranks = rankdata(s)  # average ranks for ties
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


Weights = Literal["linear", "quadratic"] | None


def cohen_kappa(
    rater_a: npt.ArrayLike,
    rater_b: npt.ArrayLike,
    labels: Sequence[Hashable] | None = None,
    weights: Weights = None,
) -> float:
    """Cohen's kappa between two raters, unweighted or with linear/quadratic weights.

    ``κ = 1 - Σ w_ij O_ij / Σ w_ij E_ij`` with ``O`` the observed confusion matrix,
    ``E`` the one expected from the raters' marginals by chance, and disagreement weights
    ``w_ij`` = 1 off the diagonal (unweighted), ``|i - j|`` (linear) or ``(i - j)²``
    (quadratic), ``i, j`` being positions in ``labels`` (so give ordinal labels in their
    order). Unweighted, this is ``(p_o - p_e) / (1 - p_e)``.

    Parameters
    ----------
    rater_a, rater_b
        1D label arrays of the same length (one entry per case).
    labels
        Category order (default: every label seen, sorted).
    weights
        ``None``, ``"linear"`` or ``"quadratic"``.

    Returns
    -------
    float
        At most 1.0; 0.0 is chance agreement. When chance disagreement is zero (both
        raters used one and the same category for every case) the raters agree
        perfectly and the result is 1.0 (scikit-learn returns NaN there). No cases: 1.0.

    Raises
    ------
    ValueError
        If the arrays are not 1D of one length, or ``weights`` is unknown.

    Examples
    --------
    >>> a = [1, 2, 3, 3, 2, 1]
    >>> b = [1, 2, 3, 2, 2, 1]
    >>> round(cohen_kappa(a, b), 4), round(cohen_kappa(a, b, weights="quadratic"), 4)
    (0.75, 0.8571)
    """
    t, p = _validate_inputs(rater_a, rater_b)
    if weights not in (None, "linear", "quadratic"):
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    cm = confusion_matrix(t, p, _labels(t, p, labels)).astype(float)
    n = cm.sum()
    if n == 0:
        return 1.0
    k = cm.shape[0]
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / n
    i, j = np.indices((k, k))
    if weights is None:
        w = (i != j).astype(float)
    elif weights == "linear":
        w = np.abs(i - j).astype(float)
    else:
        w = ((i - j) ** 2).astype(float)
    chance = float((w * expected).sum())
    observed = float((w * cm).sum())
    if chance == 0.0:
        return 1.0
    return 1.0 - observed / chance


def ratings_to_counts(
    ratings: npt.ArrayLike, labels: Sequence[Hashable] | None = None
) -> np.ndarray:
    """Turn a ``(subjects, raters)`` table of labels into the ``(subjects, categories)``
    counts :func:`fleiss_kappa` takes.

    Examples
    --------
    >>> ratings_to_counts([["a", "a", "b"], ["b", "b", "b"]])
    array([[2, 1],
           [0, 3]])
    """
    r = np.asarray(ratings)
    if r.ndim != 2:
        raise ValueError(f"ratings must be 2D (subjects, raters), got shape {r.shape}")
    flat = r.ravel()
    order = _labels(flat, flat[:0], labels)
    idx = _encode(flat, order)
    if np.any(idx < 0):
        bad = flat[int(np.flatnonzero(idx < 0)[0])]
        bad = bad.item() if hasattr(bad, "item") else bad
        raise ValueError(f"rating {bad!r} is not one of the labels {order}")
    k = len(order)
    subject = np.repeat(np.arange(r.shape[0]), r.shape[1])
    return np.bincount(subject * k + idx, minlength=r.shape[0] * k).reshape(r.shape[0], k)


def fleiss_kappa(counts: npt.ArrayLike) -> float:
    """Fleiss' kappa: agreement of a fixed number of raters per subject (Fleiss 1971).

    With ``n_ij`` raters putting subject ``i`` in category ``j`` and ``n`` raters per
    subject: ``P_i = (Σ_j n_ij² - n) / (n (n - 1))``, ``P̄`` their mean,
    ``p_j = Σ_i n_ij / (N n)``, ``P_e = Σ_j p_j²`` and ``κ = (P̄ - P_e) / (1 - P_e)``.
    The raters need not be the same people for every subject.

    Parameters
    ----------
    counts
        ``(subjects, categories)`` non-negative integers, every row summing to the same
        number of raters ``n >= 2`` (see :func:`ratings_to_counts`).

    Returns
    -------
    float
        At most 1.0. When every rating falls in one category (``P_e = 1``) the raters
        agree perfectly and the result is 1.0.

    Raises
    ------
    ValueError
        Not 2D, no subject, negative counts, unequal row sums or fewer than 2 raters.

    Examples
    --------
    >>> fleiss_kappa([[3, 0], [0, 3], [3, 0]])
    1.0
    >>> round(fleiss_kappa([[2, 1], [1, 2], [3, 0], [0, 3]]), 4)
    0.3333
    """
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"counts must be 2D (subjects, categories), got shape {c.shape}")
    if np.any(c < 0) or not np.all(np.equal(np.mod(c, 1), 0)):
        raise ValueError("counts must be non-negative integers")
    c = c.astype(float)
    per_subject = c.sum(axis=1)
    n = per_subject[0]
    if not np.all(per_subject == n):
        raise ValueError(
            f"every subject needs the same number of ratings; row sums are "
            f"{sorted(set(per_subject.astype(int).tolist()))}"
        )
    if n < 2:
        raise ValueError(f"Fleiss' kappa needs at least 2 raters per subject, got {int(n)}")
    p_i = ((c**2).sum(axis=1) - n) / (n * (n - 1))
    p_bar = float(p_i.mean())
    p_j = c.sum(axis=0) / (c.shape[0] * n)
    p_e = float((p_j**2).sum())
    if p_e >= 1.0:
        return 1.0
    return (p_bar - p_e) / (1.0 - p_e)
