"""Agreement tables between readers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from medlabel.quality.agreement import (
    Reading,
    box_pairs,
    class_agreement,
    mask_against_reference,
    mask_pairs,
)
from medlabel.quality.overlap import dice
from medlabel.quality.voting import majority_vote
from tests.quality.readers import reader_masks


def _readings() -> list[Reading]:
    return [Reading(f"r{i}", m.astype(np.uint8)[None]) for i, m in enumerate(reader_masks()[:3])]


def test_no_masks_no_rows_and_shape_mismatch() -> None:
    assert mask_pairs([Reading("a"), Reading("b")], {1: "x"}) == []
    with pytest.raises(ValueError, match="same shape"):
        mask_pairs([Reading("a", np.zeros((1, 2, 2))), Reading("b", np.zeros((1, 3, 3)))], {1: "x"})


def test_reader_without_mask_counts_as_empty() -> None:
    m = np.zeros((1, 4, 4), np.uint8)
    m[0, 1:3, 1:3] = 1
    (row,) = mask_pairs([Reading("a", m), Reading("b")], {1: "x"})
    assert row.metrics["dice"] == 0.0 and row.metrics["hd95"] == float("inf")


def test_pairs_on_real_masks_match_dice_and_are_symmetric_in_dice() -> None:
    readings = _readings()
    rows = mask_pairs(readings, {1: "coin"}, spacing=(1.0, 0.5, 0.5))
    assert [(r.a, r.b) for r in rows] == [("r0", "r1"), ("r0", "r2"), ("r1", "r2")]
    for row in rows:
        a = next(r for r in readings if r.reader == row.a).labelmap
        b = next(r for r in readings if r.reader == row.b).labelmap
        assert row.metrics["dice"] == pytest.approx(dice(a, b))
        assert row.metrics["hd95"] > 0
    # the generous and tight readers differ by 3 px rings: HD95 about 3 px = 1.5 mm
    assert rows[0].metrics["hd95"] == pytest.approx(1.5, abs=0.6)


def test_against_consensus() -> None:
    readings = _readings()
    consensus = majority_vote([r.labelmap for r in readings]).labelmap
    rows = mask_against_reference(readings, consensus, {1: "coin"})
    assert [r.a for r in rows] == ["r0", "r1", "r2"] and {r.b for r in rows} == {"consensus"}
    assert all(0.8 < r.metrics["dice"] <= 1.0 for r in rows)


def test_box_pairs() -> None:
    a = Reading("a", boxes={"nodule": np.array([[0, 0, 0, 1, 10, 10], [0, 50, 50, 1, 60, 60]])})
    b = Reading("b", boxes={"nodule": np.array([[0, 0, 1, 1, 10, 11]])})
    c = Reading("c")
    rows = box_pairs([a, b, c])
    ab, ac, bc = rows
    assert ab.metrics["matched"] == 1 and ab.metrics["f1"] == pytest.approx(2 / 3)
    assert ac.metrics["f1"] == 0.0 and np.isnan(ac.metrics["mean_iou"])
    assert bc.metrics["boxes_a"] == 1 and bc.metrics["boxes_b"] == 0


def test_class_kappa_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random(40) < 0.4
    a = truth ^ (rng.random(40) < 0.1)
    b = truth ^ (rng.random(40) < 0.2)
    c = truth ^ (rng.random(40) < 0.15)
    images = [
        {
            "a": frozenset({"malignant"} if x else set()),
            "b": frozenset({"malignant"} if y else set()),
            "c": frozenset({"malignant"} if z else set()),
        }
        for x, y, z in zip(a, b, c, strict=True)
    ]
    (res,) = class_agreement(images)
    assert res.raters == 3 and res.fleiss is not None
    ab = next(p for p in res.pairs if p[:2] == ("a", "b"))
    assert ab[2] == 40
    assert ab[3] == pytest.approx(cohen_kappa_score(a, b))
    assert 0.3 < res.fleiss < 0.9
