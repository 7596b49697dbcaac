"""Simulated prompts: boxes, jitter, clicks at the centre of the largest error region."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.quality.interactive_sim import case_rng
from medlabel.quality.prompts_sim import (
    Click,
    apply_box_offsets,
    bounding_box,
    centre_point,
    largest_error_region,
    next_click,
    sample_box_offsets,
    scribble,
)


def test_no_click_when_masks_agree() -> None:
    ref = np.zeros((1, 8, 8), bool)
    assert next_click(ref, ref) is None
    ref[0, 2:5, 2:5] = True
    assert next_click(ref, ref.copy()) is None


def test_empty_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        bounding_box(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="empty"):
        centre_point(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="same shape"):
        next_click(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 5), bool))
    with pytest.raises(ValueError, match="3D"):
        next_click(np.zeros((4, 4), bool), np.zeros((4, 4), bool))


def test_positive_click_at_centre_of_largest_miss() -> None:
    ref = np.zeros((1, 40, 40), bool)
    ref[0, 5:35, 5:35] = True
    pred = np.zeros_like(ref)
    pred[0, 5:35, 5:15] = True  # misses columns 15..34 (20 wide), and a small hole
    pred[0, 5:8, 30:35] = True
    click = next_click(ref, pred)
    assert click is not None and click.positive
    # the miss: rows 5..34, columns 15..34 minus the 3x5 corner; farthest from its border
    region, positive = largest_error_region(ref, pred)
    assert positive and region[click.point]
    assert click.point[0] == 0 and 18 <= click.point[1] <= 22 and 23 <= click.point[2] <= 26


def test_negative_click_in_largest_false_positive() -> None:
    ref = np.zeros((1, 30, 30), bool)
    ref[0, 10:20, 10:20] = True
    pred = ref.copy()
    pred[0, 0:9, 0:30] = True  # 270 false-positive pixels along the top
    pred[0, 12:14, 12:14] = False  # a 4-pixel miss
    click = next_click(ref, pred)
    # 5 px from the border all along row 4: the middle of the tie
    assert click == Click((0, 4, 14), False)


def test_misses_and_false_positives_are_separate_regions() -> None:
    """Touching miss and false-positive pixels never merge into one region."""
    ref = np.zeros((1, 10, 20), bool)
    ref[0, :, :10] = True
    pred = np.zeros_like(ref)
    pred[0, :, 10:16] = True  # 60 FP pixels touching the 100 missed pixels
    region, positive = largest_error_region(ref, pred)
    assert positive and int(region.sum()) == 100


def test_click_on_the_widest_slice_of_a_3d_error() -> None:
    ref = np.zeros((7, 20, 20), bool)
    for p, half in enumerate([1, 2, 4, 7, 5, 3, 1]):
        ref[p, 10 - half : 10 + half, 10 - half : 10 + half] = True
    click = next_click(ref, np.zeros_like(ref), axis=0)
    assert click is not None and click.positive
    assert click.point[0] == 3 and ref[click.point]
    # along the row axis: the slice through the middle rows
    click = next_click(ref, np.zeros_like(ref), axis=1)
    assert click is not None and click.point[1] in (9, 10)


def test_thin_region_centre_is_its_middle() -> None:
    line = np.zeros((21, 5), bool)
    line[:, 2] = True
    assert centre_point(line) == (10, 2)
    # anisotropic pixels: distances in mm
    blob = np.zeros((9, 9), bool)
    blob[1:8, 1:8] = True
    assert centre_point(blob, spacing=(3.0, 1.0)) == (4, 4)


def test_box_is_tight_and_inclusive() -> None:
    m = np.zeros((20, 30), bool)
    m[4:9, 7:20] = True
    assert bounding_box(m) == (4.0, 7.0, 8.0, 19.0)


def test_jitter_is_reproducible_from_the_seed() -> None:
    box = (10.0, 20.0, 49.0, 39.0)  # 40 rows x 20 columns
    first = sample_box_offsets(box, 0.1, case_rng(7, "img:1")[0])
    again = sample_box_offsets(box, 0.1, case_rng(7, "img:1")[0])
    other_seed = sample_box_offsets(box, 0.1, case_rng(8, "img:1")[0])
    other_case = sample_box_offsets(box, 0.1, case_rng(7, "img:2")[0])
    assert first == again
    assert first != other_seed and first != other_case
    assert all(abs(v) <= 4.0 for v in first[0::2]) and all(abs(v) <= 2.0 for v in first[1::2])
    assert sample_box_offsets(box, 0.0, case_rng(7, "img:1")[0]) == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="fraction"):
        sample_box_offsets(box, 1.5, np.random.default_rng(0))


def test_offsets_are_applied_sorted_and_clipped() -> None:
    assert apply_box_offsets((1.0, 1.0, 5.0, 5.0), (0.0, 0.0, 0.0, 0.0), (8, 8)) == (
        1.0,
        1.0,
        5.0,
        5.0,
    )
    # edges that cross each other are sorted; the image bounds the box
    assert apply_box_offsets((4.0, 4.0, 5.0, 5.0), (3.0, -10.0, -3.0, 10.0), (8, 8)) == (
        2.0,
        0.0,
        7.0,
        7.0,
    )


def test_scribble_discs_on_their_slice() -> None:
    s = scribble((3, 20, 20), [(1, 10, 10), (1, 0, 0)], axis=0, radius=3)
    assert not s[0].any() and not s[2].any()
    assert s[1, 10, 13] and not s[1, 10, 14] and s[1, 0, 0]
    s = scribble((6, 20, 20), [(2, 5, 10)], axis=1, radius=1)
    assert s[:, 5].sum() == 5 and s[2, 5, 10] and not s[:, 4].any()
