"""segmentation_metrics / per_label_metrics: the contract other services build on (field
names, empty cases), consistency with the single metrics, and MONAI per label."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

from medlabel.quality import overlap, surface
from medlabel.quality.segmentation import (
    SegmentationMetrics,
    per_label_metrics,
    segmentation_metrics,
)
from tests.quality.real_masks import MNI_SPACING, coins_pair, mni_tissue_labels, mni_wm_pair

FIELDS = [
    "dice",
    "iou",
    "hd",
    "hd95",
    "assd",
    "nsd",
    "volume_similarity",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "accuracy",
    "tp",
    "fp",
    "fn",
    "tn",
    "ref_volume_mm3",
    "pred_volume_mm3",
]


def test_fields_and_as_dict() -> None:
    pred, ref = coins_pair()
    m = segmentation_metrics(pred, ref, (0.5, 0.3))
    names = [f.name for f in dataclasses.fields(SegmentationMetrics)]
    assert names[: len(FIELDS)] == FIELDS
    d = m.as_dict()
    assert list(d) == names
    assert all(isinstance(d[k], int) for k in ("tp", "fp", "fn", "tn"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.dice = 0.0  # type: ignore[misc]


def test_shape_mismatch_names_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(4, 3\)"):
        segmentation_metrics(np.zeros((3, 4)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(2, 2\) and \(2, 3\)"):
        per_label_metrics(np.zeros((2, 2)), np.zeros((2, 3)), [1])


def test_both_empty() -> None:
    z = np.zeros((3, 4, 5), bool)
    m = segmentation_metrics(z, z, (2.0, 1.0, 1.0))
    assert (m.dice, m.iou, m.volume_similarity, m.nsd) == (1.0, 1.0, 1.0, 1.0)
    assert (m.hd, m.hd95, m.assd) == (0.0, 0.0, 0.0)
    assert (m.sensitivity, m.specificity, m.precision, m.f1, m.accuracy) == (1.0,) * 5
    assert (m.tp, m.fp, m.fn, m.tn) == (0, 0, 0, 60)
    assert m.ref_volume_mm3 == m.pred_volume_mm3 == 0.0


@pytest.mark.parametrize("empty_pred", [True, False])
def test_one_empty(empty_pred: bool) -> None:
    full = np.zeros((3, 4, 5), bool)
    full[1, 1:3, 1:4] = True
    empty = np.zeros_like(full)
    pred, ref = (empty, full) if empty_pred else (full, empty)
    m = segmentation_metrics(pred, ref, (2.0, 1.0, 0.5))
    assert (m.dice, m.iou, m.volume_similarity, m.nsd, m.f1) == (0.0,) * 5
    assert m.hd == m.hd95 == m.assd == math.inf
    if empty_pred:
        assert (m.sensitivity, m.precision, m.fn, m.ref_volume_mm3) == (0.0, 1.0, 6, 6.0)
    else:
        assert (m.sensitivity, m.precision, m.fp, m.pred_volume_mm3) == (1.0, 0.0, 6, 6.0)


def test_agrees_with_the_single_metrics() -> None:
    pred, ref = mni_wm_pair()
    sp = MNI_SPACING
    m = segmentation_metrics(pred, ref, sp, tolerance_mm=2.0)
    assert m.dice == overlap.dice(pred, ref) == pytest.approx(m.f1)
    assert m.iou == pytest.approx(overlap.iou(pred, ref))
    assert m.volume_similarity == pytest.approx(overlap.volume_similarity(pred, ref))
    assert m.sensitivity == overlap.sensitivity(pred, ref)
    assert m.specificity == overlap.specificity(pred, ref)
    assert m.precision == overlap.precision(pred, ref)
    assert m.accuracy == overlap.accuracy(pred, ref)
    assert m.hd == surface.hausdorff(pred, ref, sp)
    assert m.hd95 == surface.hd95(pred, ref, sp)
    assert m.assd == surface.assd(pred, ref, sp)
    assert m.nsd == surface.surface_dice(pred, ref, 2.0, sp)
    assert m.ref_volume_mm3 == np.count_nonzero(ref) * 12.0
    assert m.pred_volume_mm3 == np.count_nonzero(pred) * 12.0
    assert m.tolerance_mm == 2.0


def test_roi_restricts_counts_and_surfaces() -> None:
    pred, ref = coins_pair()
    roi = np.zeros_like(ref)
    roi[50:250, 100:300] = True
    m = segmentation_metrics(pred, ref, (0.5, 0.3), roi=roi)
    assert m.tp + m.fp + m.fn + m.tn == np.count_nonzero(roi)
    assert m.dice == overlap.dice(pred, ref, roi)
    assert m.hd == surface.hausdorff(pred, ref, (0.5, 0.3), roi=roi)


def test_per_label_against_single_masks_and_monai() -> None:
    import torch
    from monai.metrics import DiceMetric, compute_hausdorff_distance

    pred, ref = mni_tissue_labels()
    out = per_label_metrics(pred, ref, [1, 2, 7], MNI_SPACING, tolerance_mm=2.0)
    assert list(out) == [1, 2, 7]
    assert out[7].dice == 1.0 and out[7].hd == 0.0  # absent from both maps
    assert out[2] == segmentation_metrics(pred == 2, ref == 2, MNI_SPACING, tolerance_mm=2.0)

    def one_hot(labels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([labels == k for k in (1, 2)])[None]).float()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dice = DiceMetric(include_background=True, reduction="none")(one_hot(pred), one_hot(ref))
        hd95 = compute_hausdorff_distance(
            one_hot(pred), one_hot(ref), include_background=True, percentile=95, spacing=MNI_SPACING
        )
    for i, label in enumerate((1, 2)):
        assert out[label].dice == pytest.approx(dice[0, i].item(), rel=1e-6)
        assert out[label].hd95 == pytest.approx(hd95[0, i].item(), rel=1e-6)
