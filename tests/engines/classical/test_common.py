"""Shared helpers: greyscale conversion, prompts as pixels, windows."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.engines.base import EngineRequest
from medlabel.engines.classical.common import (
    block_reduce,
    discs,
    keep_seeded,
    outline,
    plane_box,
    plane_markers,
    plane_seeds,
    slice_gray,
    to_gray,
    volume_box,
)
from medlabel.engines.planes import plane_of
from medlabel.imaging.volume import Volume


def test_to_gray_rejects_a_missing_channel_axis() -> None:
    with pytest.raises(ValueError, match="3 channels"):
        to_gray(np.zeros((4, 4)), channels=3)


def test_to_gray_rejects_empty_images() -> None:
    with pytest.raises(ValueError, match="empty"):
        to_gray(np.zeros((0, 4)))


def test_to_gray_ignores_alpha_and_weights_green_most() -> None:
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)
    rgba[0, 1] = (0, 255, 0, 255)
    rgba[0, 2] = (0, 0, 255, 7)
    gray = to_gray(rgba, channels=4)
    assert gray.dtype == np.float32
    assert gray.shape == (1, 3)
    assert gray[0, 1] > gray[0, 0] > gray[0, 2]


def test_to_gray_replaces_non_finite_values_with_the_lowest() -> None:
    gray = to_gray(np.array([[np.nan, 2.0, np.inf, -1.0]]))
    assert gray.tolist() == [[-1.0, 2.0, -1.0, -1.0]]


def test_to_gray_raises_ct_padding_to_air_only_for_ct() -> None:
    values = np.array([[-3024, -2000, 0]], np.int16)
    assert to_gray(values, modality="CT").tolist() == [[-1024.0, -1024.0, 0.0]]
    assert to_gray(values, modality="MR").tolist() == [[-3024.0, -2000.0, 0.0]]


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float32, np.float64, np.uint8])
def test_to_gray_accepts_common_pixel_types(dtype: type) -> None:
    gray = to_gray(np.arange(6, dtype=dtype).reshape(2, 3))
    assert gray.dtype == np.float32
    assert gray.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_slice_gray_drops_a_single_channel_axis() -> None:
    vol = Volume.from_spacing(np.arange(24, dtype=np.uint16).reshape(2, 3, 4, 1))
    _view, gray = slice_gray(vol, EngineRequest(axis=0, index=1))
    assert gray.shape == (3, 4)
    assert gray[0, 0] == 12


def test_slice_gray_converts_rgb_slices() -> None:
    rgb = np.zeros((1, 2, 2, 3), np.uint8)
    rgb[0, 1, 1] = 255
    _view, gray = slice_gray(Volume.from_spacing(rgb), EngineRequest(axis=0, index=0))
    assert gray.shape == (2, 2)
    assert gray[1, 1] == pytest.approx(255.0)


def test_points_project_onto_slices_of_any_axis() -> None:
    vol = Volume.from_spacing(np.zeros((4, 5, 6), np.int16))
    coronal = plane_of(vol, 1, 2)  # (planes, columns)
    assert plane_seeds(coronal, [(3.0, 2.0, 4.6)]) == [(3, 5)]
    req = EngineRequest(axis=1, index=2, box=((3.0, 2.0, 5.0), (0.4, 2.0, 1.0)))
    assert plane_box(coronal, req) == (slice(0, 4), slice(1, 6))


def test_points_at_the_edge_of_the_image_round_into_it() -> None:
    vol = Volume.from_spacing(np.zeros((1, 5, 6), np.int16))
    view = plane_of(vol, 0, 0)
    assert plane_seeds(view, [(0.0, -0.5, 5.5)]) == [(0, 5)]


def test_volume_box_includes_both_corners() -> None:
    req = EngineRequest(box=((2.0, 3.0, 4.0), (0.0, 1.0, 1.0)))
    assert volume_box(req, (3, 5, 5)) == (slice(0, 3), slice(1, 4), slice(1, 5))


def test_discs_are_clipped_at_the_image_border() -> None:
    marks = discs((4, 4), [(0, 0)], 2)
    assert marks[0, 0] and marks[2, 0] and marks[0, 2]
    assert int(marks.sum()) == 6
    assert int(discs((3, 3), [(1, 1)], 0).sum()) == 1


def test_markers_join_clicks_and_scribbles_object_first() -> None:
    vol = Volume.from_spacing(np.zeros((1, 8, 8), np.int16))
    view = plane_of(vol, 0, 0)
    bg = np.zeros((1, 8, 8), bool)
    bg[0, 2, 2] = bg[0, 7, 7] = True
    req = EngineRequest(positive=((0.0, 2.0, 2.0),), background=bg)
    fg, back = plane_markers(view, req, radius=1)
    assert fg[2, 2] and not back[2, 2]
    assert back[7, 7]


def test_keep_seeded_with_no_seed_in_the_mask_is_empty() -> None:
    mask = np.array([[1, 0, 1]], bool)
    assert not keep_seeded(mask, [(0, 1)]).any()
    assert not keep_seeded(mask, np.zeros((0, 2), int)).any()
    assert keep_seeded(mask, mask).tolist() == [[True, False, True]]


def test_outline_of_a_box() -> None:
    ring = outline((6, 6), (slice(1, 5), slice(1, 5)))
    assert int(ring.sum()) == 12
    assert not ring[2:4, 2:4].any()


def test_block_reduce_pads_with_the_edge() -> None:
    a = np.arange(9, dtype=np.float32).reshape(3, 3)
    assert block_reduce(a, 2, np.add).tolist() == [[8.0, 14.0], [26.0, 32.0]]
