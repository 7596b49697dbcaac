"""Box metrics: edge cases first, then cross-checks against torchvision's IoU and
pycocotools' COCOeval on boxes of real objects (the coins photograph)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from scipy import ndimage

from medlabel.quality.boxes import (
    average_precision,
    box_iou,
    detection_metrics,
    match_boxes,
)
from tests.quality.real_masks import coins_pair

# --- edge cases ------------------------------------------------------------------------------


def test_bad_boxes_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"got shape \(2, 5\)"):
        box_iou(np.zeros((2, 5)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="upper corner below lower corner"):
        box_iou([[0, 0, 2, 2], [3, 3, 1, 4]], [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"all be 2D or all 3D; got shapes \(1, 4\) and \(1, 6\)"):
        box_iou([0, 0, 1, 1], [0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="one score per predicted box"):
        match_boxes([[0, 0, 1, 1]], [[0, 0, 1, 1]], scores=[0.1, 0.2])
    with pytest.raises(ValueError, match="iou_threshold"):
        match_boxes([[0, 0, 1, 1]], [[0, 0, 1, 1]], iou_threshold=0.0)
    with pytest.raises(ValueError, match="interpolation"):
        average_precision([[0, 0, 1, 1]], [1.0], [[0, 0, 1, 1]], interpolation="voc11")  # type: ignore[arg-type]


def test_iou_by_hand_2d_3d_and_degenerate() -> None:
    assert box_iou([0, 0, 2, 2], [1, 1, 3, 3])[0, 0] == pytest.approx(1 / 7)
    assert box_iou([0, 0, 2, 2], [2, 0, 4, 2])[0, 0] == 0.0  # touching edges
    assert box_iou([0, 0, 0, 2, 2, 2], [0, 0, 1, 2, 2, 3])[0, 0] == pytest.approx(4 / 12)
    assert box_iou([1, 1, 1, 1], [1, 1, 1, 1])[0, 0] == 0.0  # zero-size boxes
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_empty_detection_cases() -> None:
    none = np.zeros((0, 4))
    one = [[0, 0, 10, 10]]
    both = detection_metrics(none, none)
    assert (both.tp, both.fp, both.fn, both.precision, both.recall, both.f1) == (
        0,
        0,
        0,
        1.0,
        1.0,
        1.0,
    )
    missed = detection_metrics(none, one)
    assert (missed.fn, missed.precision, missed.recall, missed.f1) == (1, 1.0, 0.0, 0.0)
    spurious = detection_metrics(one, none)
    assert (spurious.fp, spurious.precision, spurious.recall, spurious.f1) == (1, 0.0, 1.0, 0.0)
    assert average_precision(none, np.zeros(0), none) == 1.0
    assert average_precision(one, [0.5], none) == 0.0
    assert average_precision(none, np.zeros(0), one) == 0.0


def test_matching_is_greedy_by_score_and_one_to_one() -> None:
    ref = [[0, 0, 10, 10]]
    pred = [[0, 0, 10, 9], [0, 0, 10, 10]]  # the perfect box scores lower
    m = match_boxes(pred, ref, scores=[0.9, 0.1])
    assert m.pairs == ((0, 0, 0.9),)
    assert m.unmatched_predictions == (1,)  # a duplicate is a false positive
    # a prediction takes the reference it overlaps most
    m = match_boxes([[0, 0, 10, 10]], [[5, 0, 15, 10], [1, 0, 11, 10]])
    assert m.pairs[0][1] == 1
    # the threshold is inclusive
    assert len(match_boxes([[0, 0, 2, 1]], [[0, 0, 1, 1]], iou_threshold=0.5).pairs) == 1


def test_average_precision_by_hand() -> None:
    ref = [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]
    pred = [[0, 0, 10, 10], [60, 60, 70, 70], [20, 20, 30, 30], [80, 80, 90, 90]]
    scores = [0.9, 0.8, 0.7, 0.6]
    # ranks: TP (P 1, R 1/3), FP (1/2, 1/3), TP (2/3, 2/3), FP (1/2, 2/3); recall never 1
    all_points = average_precision(pred, scores, ref, interpolation="all_points")
    assert all_points == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    coco = average_precision(pred, scores, ref)
    # recall grid 0..0.33 (34 points) at precision 1, 0.34..0.66 (33 points) at 2/3
    assert coco == pytest.approx((34 * 1 + 33 * 2 / 3) / 101)


def test_several_images_and_single_image_forms_agree() -> None:
    ref = [[0, 0, 10, 10], [20, 20, 30, 30]]
    pred = [[0, 0, 10, 11], [50, 50, 60, 60]]
    one = average_precision(pred, [0.9, 0.3], ref)
    assert average_precision([pred], [[0.9, 0.3]], [ref]) == one
    two = average_precision([pred, np.zeros((0, 4))], [[0.9, 0.3], []], [ref, ref[:1]])
    assert two < one  # a missed box in the second image lowers recall


# --- cross-checks on boxes of real objects ---------------------------------------------------


def _component_boxes(mask: np.ndarray, min_size: int = 20) -> np.ndarray:
    labels, _ = ndimage.label(mask)
    boxes = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None or np.count_nonzero(labels[sl] == i) < min_size:
            continue
        rows, cols = sl
        boxes.append([cols.start, rows.start, cols.stop, rows.stop])  # x = column
    return np.asarray(boxes, float)


def _coins_images() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Four "images" (the quadrants of the coins photograph): reference boxes of the Otsu
    objects, predicted boxes of the smoothed-threshold objects jittered, with scores."""
    pred_mask, ref_mask = coins_pair()
    rng = np.random.default_rng(7)
    out = []
    h, w = ref_mask.shape
    for rows in (slice(0, h // 2), slice(h // 2, h)):
        for cols in (slice(0, w // 2), slice(w // 2, w)):
            ref = _component_boxes(ref_mask[rows, cols])
            pred = _component_boxes(pred_mask[rows, cols])
            pred = pred + rng.normal(0.0, 2.5, pred.shape)
            pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1.0)
            scores = rng.uniform(0.05, 1.0, len(pred))
            out.append((pred, scores, ref))
    return out


def test_iou_against_torchvision() -> None:
    import torch
    from torchvision.ops import box_iou as tv_box_iou

    pred, _, ref = _coins_images()[0]
    expected = tv_box_iou(torch.from_numpy(pred), torch.from_numpy(ref)).numpy()
    np.testing.assert_allclose(box_iou(pred, ref), expected, atol=1e-12)


def _coco_ap(
    images: list[tuple[np.ndarray, np.ndarray, np.ndarray]], thresholds: list[float]
) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b: np.ndarray) -> list[float]:
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    anns, dets = [], []
    for image_id, (pred, scores, ref) in enumerate(images):
        for b in ref:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": xywh(b),
                    "area": float((b[2] - b[0]) * (b[3] - b[1])),
                    "iscrowd": 0,
                }
            )
        for b, s in zip(pred, scores, strict=True):
            dets.append(
                {"image_id": image_id, "category_id": 1, "bbox": xywh(b), "score": float(s)}
            )
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = {
            "images": [{"id": i} for i in range(len(images))],
            "annotations": anns,
            "categories": [{"id": 1, "name": "coin"}],
        }
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.params.iouThrs = np.asarray(thresholds)
        ev.evaluate()
        ev.accumulate()
    # precision[T, R, K, A, M]: class 0, area "all", the largest detection limit
    return [float(ev.eval["precision"][t, :, 0, 0, -1].mean()) for t in range(len(thresholds))]


def test_average_precision_against_pycocotools() -> None:
    images = _coins_images()
    assert sum(len(r) for _, _, r in images) > 15
    preds, scores, refs = (list(x) for x in zip(*images, strict=True))
    thresholds = [0.5, 0.75]
    expected = _coco_ap(images, thresholds)
    for thr, want in zip(thresholds, expected, strict=True):
        got = average_precision(preds, scores, refs, iou_threshold=thr)
        assert got == pytest.approx(want, abs=1e-12)
    assert 0.0 < expected[1] < expected[0] < 1.0  # not a trivial case
