"""Dice: edge cases first."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.quality.overlap import dice


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
