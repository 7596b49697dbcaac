"""Overlap metrics: edge cases first, then cross-checks against scikit-learn, SimpleITK
and MONAI on real masks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from medlabel.quality.overlap import (
    ConfusionCounts,
    accuracy,
    confusion_counts,
    dice,
    f1_score,
    iou,
    precision,
    sensitivity,
    specificity,
    volume_similarity,
)
from tests.quality.real_masks import coins_pair, mni_wm_pair


def test_two_empty_masks_agree() -> None:
    assert dice(np.zeros((3, 4), bool), np.zeros((3, 4), bool)) == 1.0


def test_one_empty_mask_scores_zero() -> None:
    a = np.zeros((1, 5, 5), bool)
    b = a.copy()
    b[0, 2, 2] = True
    assert dice(a, b) == 0.0
    assert dice(b, a) == 0.0


def test_shape_mismatch_names_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(4, 3\)"):
        dice(np.zeros((3, 4)), np.zeros((4, 3)))


def test_identical_disjoint_and_partial() -> None:
    a = np.zeros((10, 10), np.uint8)
    a[:5] = 255  # any non-zero value is inside
    assert dice(a, a > 0) == 1.0
    assert dice(a, np.roll(a, 5, axis=0)) == 0.0
    b = np.zeros((10, 10), bool)
    b[:5, :5] = True
    assert dice(a, b) == pytest.approx(2 * 25 / (50 + 25))


def test_symmetric_and_3d() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 4, 6, 6)) > 0.5
    assert dice(a, b) == dice(b, a)
    assert 0.0 < dice(a, b) < 1.0


# --- IoU, volume similarity, confusion counts and rates: edge cases ------------------------


@pytest.mark.parametrize(
    "fn", [iou, volume_similarity, sensitivity, specificity, precision, f1_score, accuracy]
)
def test_every_metric_rejects_shape_mismatch(fn: Callable[..., float]) -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(3, 2\)"):
        fn(np.zeros((2, 3)), np.zeros((3, 2)))


def test_roi_shape_mismatch_names_shapes() -> None:
    with pytest.raises(ValueError, match=r"roi \(4,\) and masks \(3,\)"):
        confusion_counts(np.zeros(3), np.zeros(3), roi=np.ones(4))


def test_both_empty_agree_and_rates_are_vacuous() -> None:
    z = np.zeros((2, 3, 4), bool)
    assert iou(z, z) == 1.0
    assert volume_similarity(z, z) == 1.0
    assert confusion_counts(z, z) == ConfusionCounts(tp=0, fp=0, fn=0, tn=24)
    # no positive to find, no positive claimed: nothing was wrong
    assert sensitivity(z, z) == precision(z, z) == f1_score(z, z) == 1.0
    assert specificity(z, z) == accuracy(z, z) == 1.0
    assert sensitivity(z, z, zero_division=0.0) == 0.0


def test_one_empty_scores_zero_overlap() -> None:
    empty = np.zeros((5, 5), bool)
    one = empty.copy()
    one[2, 2] = True
    for a, b in ((empty, one), (one, empty)):
        assert iou(a, b) == 0.0
        assert volume_similarity(a, b) == 0.0
        assert f1_score(a, b) == 0.0
    # empty prediction: nothing found, nothing claimed wrongly
    assert sensitivity(empty, one) == 0.0
    assert precision(empty, one) == 1.0
    # empty reference: the single voxel is a false positive
    assert precision(one, empty) == 0.0
    assert sensitivity(one, empty) == 1.0
    assert specificity(one, empty) == 24 / 25


def test_one_voxel_each() -> None:
    a = np.zeros((3, 3, 3), bool)
    a[1, 1, 1] = True
    assert dice(a, a) == iou(a, a) == 1.0
    b = np.roll(a, 1, axis=0)
    assert confusion_counts(b, a) == ConfusionCounts(tp=0, fp=1, fn=1, tn=25)
    assert volume_similarity(a, b) == 1.0  # same size, no overlap: VS only compares sizes


def test_roi_restricts_every_count() -> None:
    ref = np.array([[1, 1, 0, 0], [1, 1, 0, 0]])
    pred = np.array([[1, 0, 1, 0], [1, 0, 1, 0]])
    roi = np.array([[1, 1, 1, 0], [0, 0, 0, 0]])
    assert confusion_counts(pred, ref, roi) == ConfusionCounts(tp=1, fp=1, fn=1, tn=0)
    assert dice(pred, ref, roi) == 0.5
    assert iou(pred, ref, roi) == pytest.approx(1 / 3)
    assert accuracy(pred, ref, roi) == pytest.approx(1 / 3)
    assert accuracy(pred, ref, np.zeros_like(roi)) == 1.0  # nothing counted


def test_identities_between_metrics() -> None:
    pred, ref = coins_pair()
    d = dice(pred, ref)
    assert f1_score(pred, ref) == pytest.approx(d)
    assert iou(pred, ref) == pytest.approx(d / (2 - d))
    c = confusion_counts(pred, ref)
    assert c.total == pred.size
    assert c.tp + c.fn == np.count_nonzero(ref)


# --- cross-checks on real masks --------------------------------------------------------------


@pytest.mark.parametrize("pair", [coins_pair, mni_wm_pair], ids=["coins-2d", "mni-wm-3d"])
def test_against_scikit_learn(pair: Callable[[], tuple[np.ndarray, np.ndarray]]) -> None:
    from sklearn import metrics as skm

    pred, ref = pair()
    y_pred, y_true = pred.ravel(), ref.ravel()
    tn, fp, fn, tp = skm.confusion_matrix(y_true, y_pred, labels=[False, True]).ravel()
    assert confusion_counts(pred, ref) == ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=tn)
    assert sensitivity(pred, ref) == pytest.approx(skm.recall_score(y_true, y_pred), abs=1e-12)
    assert precision(pred, ref) == pytest.approx(skm.precision_score(y_true, y_pred), abs=1e-12)
    assert f1_score(pred, ref) == pytest.approx(skm.f1_score(y_true, y_pred), abs=1e-12)
    assert accuracy(pred, ref) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
    assert iou(pred, ref) == pytest.approx(skm.jaccard_score(y_true, y_pred), abs=1e-12)
    spec = skm.recall_score(~y_true, ~y_pred)
    assert specificity(pred, ref) == pytest.approx(spec, abs=1e-12)


@pytest.mark.parametrize("pair", [coins_pair, mni_wm_pair], ids=["coins-2d", "mni-wm-3d"])
def test_against_simpleitk_label_overlap(pair: Callable[[], tuple[np.ndarray, np.ndarray]]) -> None:
    import SimpleITK as sitk  # noqa: N813 - the name SimpleITK documents

    pred, ref = pair()
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(
        sitk.GetImageFromArray(pred.astype(np.uint8)), sitk.GetImageFromArray(ref.astype(np.uint8))
    )
    assert dice(pred, ref) == pytest.approx(f.GetDiceCoefficient(), abs=1e-12)
    assert iou(pred, ref) == pytest.approx(f.GetJaccardCoefficient(), abs=1e-12)
    # SimpleITK's volume similarity is the signed 2 (|P| - |R|) / (|P| + |R|)
    assert volume_similarity(pred, ref) == pytest.approx(1 - abs(f.GetVolumeSimilarity()) / 2)
    assert 1 - sensitivity(pred, ref) == pytest.approx(f.GetFalseNegativeError(), abs=1e-12)
    # SimpleITK's "false positive error" is FP / (FP + TN) = 1 - specificity
    assert 1 - specificity(pred, ref) == pytest.approx(f.GetFalsePositiveError(), abs=1e-12)


def test_dice_against_monai() -> None:
    import torch
    from monai.metrics import DiceMetric

    pred, ref = mni_wm_pair()
    metric = DiceMetric(include_background=True, reduction="none")
    expected = metric(
        torch.from_numpy(pred)[None, None].float(), torch.from_numpy(ref)[None, None].float()
    )
    assert dice(pred, ref) == pytest.approx(float(expected.item()), rel=1e-6)
