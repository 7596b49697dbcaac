"""Classification and agreement metrics: edge cases first, then cross-checks against
scikit-learn on real voxel labels and a textbook Fleiss' kappa example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medlabel.quality.classification import (
    accuracy_score,
    class_metrics,
    cohen_kappa,
    confusion_matrix,
    fleiss_kappa,
    macro_metrics,
    ratings_to_counts,
    roc_auc,
    roc_curve,
)
from tests.quality.real_masks import mni_images, mni_tissue_labels

# --- edge cases ------------------------------------------------------------------------------


def test_length_mismatch_names_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(3,\) and \(2,\)"):
        confusion_matrix([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=r"1D"):
        cohen_kappa(np.zeros((2, 2)), np.zeros((2, 2)))


def test_no_samples() -> None:
    assert confusion_matrix([], [], labels=[0, 1]).tolist() == [[0, 0], [0, 0]]
    assert accuracy_score([], []) == 1.0
    assert cohen_kappa([], [], labels=[0, 1]) == 1.0


def test_labels_order_and_unlisted_labels() -> None:
    cm = confusion_matrix(["b", "a", "c"], ["b", "b", "c"], labels=["b", "a"])
    assert cm.tolist() == [[1, 0], [1, 0]]  # the "c" sample is left out
    with pytest.raises(ValueError, match="distinct"):
        confusion_matrix([1], [1], labels=[1, 1])


def test_zero_division_of_per_class_rates() -> None:
    m = class_metrics([0, 0, 1], [0, 0, 0], labels=[0, 1, 2])
    assert m[1].precision == 0.0 and m[1].sensitivity == 0.0  # never predicted, missed
    assert m[2].sensitivity == 0.0 and m[2].support == 0  # absent everywhere
    assert class_metrics([0, 0, 1], [0, 0, 0], zero_division=1.0)[1].precision == 1.0


def test_roc_needs_two_classes_and_binary_truth() -> None:
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="binary"):
        roc_curve([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        roc_auc([0, 1], [0.1, math.nan])


def test_roc_ties_count_one_half() -> None:
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc_auc([0, 0, 1, 1], [0.1, 0.3, 0.3, 0.9]) == pytest.approx(0.875)
    c = roc_curve([0, 0, 1, 1], [0.1, 0.3, 0.3, 0.9])
    assert c.fpr.tolist() == [0.0, 0.0, 0.5, 1.0]  # the tie moves the curve diagonally
    assert c.tpr.tolist() == [0.0, 0.5, 1.0, 1.0]


def test_kappa_perfect_chance_and_single_category() -> None:
    a = [0, 1, 2, 2, 1, 0]
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(a, a, weights="quadratic") == 1.0
    assert cohen_kappa([0, 0, 1, 1], [0, 1, 0, 1]) == 0.0
    assert cohen_kappa([3, 3, 3], [3, 3, 3]) == 1.0  # no chance disagreement possible
    with pytest.raises(ValueError, match="weights"):
        cohen_kappa(a, a, weights="cubic")  # type: ignore[arg-type]


def test_fleiss_input_checks() -> None:
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa([[2, 1], [1, 1]])
    with pytest.raises(ValueError, match="at least 2 raters"):
        fleiss_kappa([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="non-negative integers"):
        fleiss_kappa([[2.5, 0.5]])
    with pytest.raises(ValueError, match="2D"):
        fleiss_kappa([1, 2])
    assert fleiss_kappa([[4, 0], [4, 0]]) == 1.0  # every rating in one category


def test_ratings_to_counts() -> None:
    counts = ratings_to_counts([[1, 1, 2], [3, 3, 3]], labels=[1, 2, 3])
    assert counts.tolist() == [[2, 1, 0], [0, 0, 3]]
    with pytest.raises(ValueError, match="not one of the labels"):
        ratings_to_counts([[1, 4]], labels=[1, 2])


# --- Fleiss' kappa: a hand-worked textbook example -------------------------------------------

# 10 subjects, 14 raters, 5 categories: the worked example of the Wikipedia article
# "Fleiss' kappa" (P̄ = 0.378, P_e = 0.213, κ = 0.210).
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_textbook_example() -> None:
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.210, abs=5e-4)
    # the published intermediate values
    c = np.asarray(FLEISS_EXAMPLE, float)
    p_j = c.sum(axis=0) / c.sum()
    assert p_j.round(3).tolist() == [0.143, 0.2, 0.279, 0.15, 0.229]


def test_fleiss_with_two_raters_is_scotts_pi() -> None:
    # Fleiss' kappa generalises Scott's pi: with two raters they coincide
    pred, ref = mni_tissue_labels()
    brain = (pred > 0) | (ref > 0)
    a, b = pred[brain], ref[brain]
    p_o = np.mean(a == b)
    pooled = np.bincount(np.r_[a, b], minlength=3) / (2 * a.size)
    scott = (p_o - (pooled**2).sum()) / (1 - (pooled**2).sum())
    counts = ratings_to_counts(np.stack([a, b], axis=1), labels=[0, 1, 2])
    assert fleiss_kappa(counts) == pytest.approx(scott, abs=1e-12)


# --- cross-checks against scikit-learn on real voxel labels ----------------------------------


def _brain_labels() -> tuple[np.ndarray, np.ndarray]:
    """True and predicted tissue class (0 background, 1 GM, 2 WM) of the voxels either
    segmentation puts in the brain."""
    pred, ref = mni_tissue_labels()
    brain = (pred > 0) | (ref > 0)
    return ref[brain], pred[brain]


def test_confusion_matrix_and_rates_against_scikit_learn() -> None:
    from sklearn import metrics as skm

    y_true, y_pred = _brain_labels()
    assert np.array_equal(confusion_matrix(y_true, y_pred), skm.confusion_matrix(y_true, y_pred))
    labels = [2, 0, 1]
    assert np.array_equal(
        confusion_matrix(y_true, y_pred, labels),
        skm.confusion_matrix(y_true, y_pred, labels=labels),
    )
    prec, rec, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=[0, 1, 2], zero_division=0
    )
    per_class = class_metrics(y_true, y_pred)
    mcm = skm.multilabel_confusion_matrix(y_true, y_pred, labels=[0, 1, 2])
    for i, label in enumerate([0, 1, 2]):
        tn, fp = mcm[i, 0, 0], mcm[i, 0, 1]
        m = per_class[label]
        assert m.precision == pytest.approx(prec[i], abs=1e-12)
        assert m.sensitivity == pytest.approx(rec[i], abs=1e-12)
        assert m.f1 == pytest.approx(f1[i], abs=1e-12)
        assert m.specificity == pytest.approx(tn / (tn + fp), abs=1e-12)
        assert m.support == support[i]
    macro = macro_metrics(y_true, y_pred)
    assert macro.precision == pytest.approx(
        skm.precision_score(y_true, y_pred, average="macro", zero_division=0)
    )
    assert macro.sensitivity == pytest.approx(
        skm.recall_score(y_true, y_pred, average="macro", zero_division=0)
    )
    assert macro.f1 == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert accuracy_score(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_against_scikit_learn(weights: str | None) -> None:
    from sklearn.metrics import cohen_kappa_score

    y_true, y_pred = _brain_labels()
    expected = cohen_kappa_score(y_true, y_pred, weights=weights)
    assert cohen_kappa(y_true, y_pred, weights=weights) == pytest.approx(expected, abs=1e-12)  # type: ignore[arg-type]
    # weights follow the order of ``labels``
    order = [2, 1, 0]
    expected = cohen_kappa_score(y_true, y_pred, labels=order, weights=weights)
    got = cohen_kappa(y_true, y_pred, labels=order, weights=weights)  # type: ignore[arg-type]
    assert got == pytest.approx(expected, abs=1e-12)


def test_roc_against_scikit_learn_with_many_ties() -> None:
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as sk_roc_curve

    # white matter (reference map) scored by the T1 intensity: uint8, so ties everywhere
    img = mni_images()
    brain = img["t1"] > 40
    y = img["wm"][brain] > 127
    score = img["t1"][brain]
    auc = roc_auc(y, score)
    assert auc == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert 0.9 < auc < 1.0
    curve = roc_curve(y, score)
    fpr, tpr, thresholds = sk_roc_curve(y, score, drop_intermediate=False)
    np.testing.assert_allclose(curve.fpr, fpr, atol=1e-12)
    np.testing.assert_allclose(curve.tpr, tpr, atol=1e-12)
    np.testing.assert_array_equal(curve.thresholds[1:], thresholds[1:])
    assert curve.thresholds[0] == math.inf
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(auc, abs=1e-12)
