"""Building an evaluation report from cases in memory: rows, ROI, absent labels, empty
masks, pixel confusion, ROC of graded predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medlabel.core.errors import InvalidInputError
from medlabel.quality.report import Case, ReportOptions, SkippedCase, build_report
from medlabel.quality.segmentation import segmentation_metrics
from tests.quality.report_fixtures import coins_masks, head_mask, shift_k

REF = np.array(
    [
        [0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ],
    np.uint8,
)
PRED = np.array(
    [
        [1, 0, 0, 0, 0, 1],
        [0, 1, 1, 0, 0, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ],
    np.uint8,
)


def test_no_cases_and_duplicate_names() -> None:
    with pytest.raises(InvalidInputError, match="no cases given"):
        build_report([])
    with pytest.raises(InvalidInputError, match=r"no case could be evaluated .*a: unreadable"):
        build_report([SkippedCase("a", "unreadable")])
    with pytest.raises(InvalidInputError, match="two cases are named 'a'"):
        build_report([Case("a", REF, REF), Case("a", REF, REF)])


def test_roi_restricts_the_counted_pixels() -> None:
    """Hand count: 24 pixels, TP 5, FN 1, FP 4 → accuracy 19/24; inside the left four
    columns (16 pixels) three false positives fall away → accuracy 14/16."""
    roi = np.zeros_like(REF, bool)
    roi[:, :4] = True
    whole = build_report([Case("a", PRED, REF)]).rows[0].values
    inside = build_report([Case("a", PRED, REF, roi=roi)]).rows[0].values
    assert (whole["tp"], whole["fn"], whole["fp"], whole["tn"]) == (5, 1, 4, 14)
    assert whole["accuracy"] == pytest.approx(19 / 24)
    assert (inside["tp"], inside["fn"], inside["fp"], inside["tn"]) == (5, 1, 1, 9)
    assert inside["accuracy"] == pytest.approx(14 / 16)
    assert inside["specificity"] == pytest.approx(9 / 10)
    assert inside["dice"] == pytest.approx(2 * 5 / (2 * 5 + 1 + 1))


def test_rows_are_the_metrics_library_values() -> None:
    ref, pred, _ = coins_masks()
    report = build_report([Case("coins", pred, ref, spacing=(0.5, 0.25))])
    row = report.rows[0]
    expected = segmentation_metrics(pred, ref, (0.5, 0.25)).as_dict()
    for key in ("dice", "hd95", "assd", "nsd", "sensitivity", "tp", "ref_volume_mm3"):
        assert row.values[key] == expected[key]
    assert math.isnan(row.values["auc"]) and report.roc is None
    assert row.present == "both" and row.spacing == (0.5, 0.25)


def test_spacing_of_a_volume_is_used_for_distances() -> None:
    mask = head_mask().transpose(2, 1, 0)  # (plane, row, column)
    moved = shift_k(head_mask()).transpose(2, 1, 0)
    report = build_report([Case("head", moved, mask, spacing=(3.5, 2.0, 2.0))])
    assert report.rows[0].values["hd"] == pytest.approx(3.5)  # one plane apart
    voxels = build_report([Case("head", moved, mask)])
    assert voxels.rows[0].values["hd"] == pytest.approx(1.0)


def test_single_plane_images_are_measured_in_2d() -> None:
    ref, pred, _ = coins_masks()
    flat = build_report([Case("c", pred[None], ref[None], spacing=(1.0, 1.0, 1.0))]).rows[0]
    assert flat.values["hd95"] == segmentation_metrics(pred, ref).hd95
    assert flat.shape == ref.shape


def test_absent_labels_empty_masks_and_multilabel_confusion() -> None:
    ref = np.array([[0, 1, 1, 2, 2, 0], [0, 1, 1, 2, 2, 0]], np.uint8)
    pred = np.array([[0, 1, 1, 1, 2, 2], [0, 1, 0, 2, 2, 0]], np.uint8)
    only_one = np.array([[0, 1, 1, 0]], np.uint8)
    missed = np.zeros_like(only_one)
    report = build_report(
        [Case("multi", pred, ref), Case("one", only_one, only_one), Case("miss", missed, only_one)],
        ReportOptions(label_names={2: "tumour"}),
    )
    assert report.labels == (1, 2) and report.n_cases == 3
    assert [(r.case, r.label, r.present) for r in report.rows] == [
        ("multi", 1, "both"),
        ("multi", 2, "both"),
        ("one", 1, "both"),
        ("miss", 1, "reference"),
    ]
    two = report.label_summary(2)
    assert (two.n_cases, two.n_absent) == (1, 2)
    one = report.label_summary(1)
    assert one.metrics["dice"].n == 3 and one.metrics["dice"].min == 0.0
    assert one.metrics["hd"].n == 2 and one.metrics["hd"].n_excluded == 1  # infinite
    assert report.confusion.labels == (0, 1, 2)
    assert report.confusion.matrix.tolist() == [[3 + 2 + 2, 0, 1], [1 + 2, 3 + 2, 0], [0, 1, 3]]


def test_labels_option_restricts_rows() -> None:
    ref = np.array([[0, 1, 1, 2, 2, 0]], np.uint8)
    report = build_report([Case("a", ref, ref)], ReportOptions(labels=(2, 5)))
    assert report.labels == (2, 5) and [r.label for r in report.rows] == [2]
    assert report.label_summary(5).n_cases == 0 and report.label_summary(5).n_absent == 1
    assert report.label_summary(5).metrics["dice"].mean is None


def test_graded_predictions_get_roc_inside_the_roi() -> None:
    ref, _, prob = coins_masks()
    scores = prob / 255.0
    roi = np.zeros_like(ref)
    roi[:, :250] = True
    cases = [
        Case("all", (scores > 0.5).astype(np.uint8), ref, pred_scores=scores),
        Case("left", (scores > 0.5).astype(np.uint8), ref, roi=roi, pred_scores=scores),
    ]
    report = build_report(cases)
    aucs = {r.case: r.values["auc"] for r in report.rows}
    assert aucs["all"] == pytest.approx(roc_auc_score(ref.ravel(), scores.ravel()))
    inside = roi.astype(bool)
    assert aucs["left"] == pytest.approx(roc_auc_score(ref[inside], scores[inside]))
    assert report.roc is not None and [c.name for c in report.roc.cases] == ["all", "left"]
    assert report.roc.mean.auc == pytest.approx(np.mean(list(aucs.values())))
    assert "auc" in report.label_summary(1).metrics
    curve = report.roc.cases[0]
    assert curve.fpr[0] == 0 and curve.fpr[-1] == 1 and len(curve.fpr) <= 200


def test_skipped_and_failing_cases_are_listed() -> None:
    good = Case("good", PRED, REF)
    report = build_report([good, SkippedCase("broken", "cannot read broken.png")])
    assert report.n_cases == 1 and [s.name for s in report.skipped] == ["broken"]


def test_worst_first() -> None:
    ref, pred, _ = coins_masks()
    empty = np.zeros_like(ref)
    report = build_report([Case("good", ref, ref), Case("tight", pred, ref), Case("e", empty, ref)])
    assert [r.case for r in report.worst_first("dice")] == ["e", "tight", "good"]
    assert [r.case for r in report.worst_first("hd95")] == ["e", "tight", "good"]


def test_cases_without_any_label_still_make_a_report() -> None:
    empty = np.zeros((8, 8), np.uint8)
    report = build_report([Case("blank", empty, empty)])
    assert report.labels == () and report.rows == () and report.n_cases == 1
    assert report.confusion.matrix.tolist() == [[64]]
    assert "<svg" in report.to_html()
