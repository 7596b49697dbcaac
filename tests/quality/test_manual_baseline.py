"""The manual polygon baseline on shapes whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medlabel.quality.manual_baseline import contours, fill_polygons, manual_vertices, simplify
from tests.quality.phantoms import ellipse


def test_empty_mask_needs_no_vertices() -> None:
    out = manual_vertices(np.zeros((1, 10, 10), bool))
    assert (out.vertices, out.dice, out.slices, out.reached) == (0, 1.0, 0, True)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="3D"):
        manual_vertices(np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="target"):
        manual_vertices(np.zeros((1, 10, 10), bool), target=0.0)


def test_traced_contours_fill_back_exactly() -> None:
    rng = np.random.default_rng(1)
    for seed in range(5):
        smooth = ndimage.gaussian_filter(rng.random((50, 60)), 2) > 0.5
        speckled = rng.random((30, 40)) > 0.5  # diagonal contacts, holes, image edges
        for mask in (smooth, speckled):
            assert np.array_equal(fill_polygons(contours(mask), mask.shape), mask), seed


def test_square_needs_four_vertices() -> None:
    m = np.zeros((1, 60, 60), bool)
    m[0, 10:50, 15:45] = True
    out = manual_vertices(m)
    assert out.vertices == 4 and out.dice >= 0.9 and out.reached


def test_square_with_a_hole_needs_eight() -> None:
    m = np.zeros((1, 60, 60), bool)
    m[0, 5:55, 5:55] = True
    m[0, 15:45, 15:45] = False  # without the hole Dice would be 0.78
    out = manual_vertices(m)
    assert out.vertices == 8 and out.dice >= 0.9


def test_lower_target_fewer_vertices_for_curved_shapes() -> None:
    m = ellipse((80, 80), (40, 40), (30, 20))[None]
    strict = manual_vertices(m, target=0.98)
    loose = manual_vertices(m, target=0.90)
    assert 5 <= loose.vertices < strict.vertices
    assert loose.dice >= 0.90 and strict.dice >= 0.98


def test_volume_sums_over_slices_with_the_structure() -> None:
    m = np.zeros((6, 40, 40), bool)
    m[1:4, 10:30, 10:30] = True
    out = manual_vertices(m, axis=0)
    assert (out.vertices, out.slices) == (12, 3)
    # along rows there are 20 slices of 3x20 rectangles
    out = manual_vertices(m, axis=1)
    assert out.slices == 20 and out.vertices == 80


def test_specks_are_not_outlined() -> None:
    m = np.zeros((1, 20, 20), bool)
    m[0, 5, 5] = True
    out = manual_vertices(m)
    assert out.slices == 1 and out.vertices >= 0


def test_polygon_fill_even_odd_and_outside() -> None:
    outer = np.array([[-5.0, -5.0], [-5.0, 14.0], [14.0, 14.0], [14.0, -5.0]])
    inner = np.array([[2.5, 2.5], [2.5, 6.5], [6.5, 6.5], [6.5, 2.5]])
    filled = fill_polygons([outer, inner], (10, 10))
    assert filled.sum() == 100 - 16 and not filled[3:7, 3:7].any()
    assert not fill_polygons([], (4, 4)).any()
    assert simplify([np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]])], 0.0) == []
