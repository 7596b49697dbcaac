"""Marker-based watershed: markers, default background, boxes, coarse-to-fine."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.engines.classical.watershed import WatershedEngine, marker_watershed
from medlabel.engines.runner import run
from tests.engines.classical.phantoms import (
    as_volume,
    ct_small,
    dice,
    disc_phantom,
    ellipse,
    on_plane,
    request,
    two_structures,
)

ENGINE = WatershedEngine()


# edge cases ---------------------------------------------------------------------------
def test_an_object_marker_is_required() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="needs a foreground or positive prompt"):
        run(ENGINE, vol, request(negative=(on_plane(2, 2),)))


def test_object_markers_outside_the_box_are_refused() -> None:
    vol = as_volume(disc_phantom()[0])
    req = request(positive=(on_plane(64, 60),), box=(on_plane(0, 0), on_plane(20, 20)))
    with pytest.raises(ValueError, match="inside the box"):
        run(ENGINE, vol, req)


def test_bad_parameters_are_rejected() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="sigma"):
        run(ENGINE, vol, request(positive=(on_plane(64, 60),), params={"sigma": -1}))
    with pytest.raises(ValueError, match="compactness"):
        run(ENGINE, vol, request(positive=(on_plane(64, 60),), params={"compactness": "x"}))


def test_scribbles_of_the_wrong_shape_are_rejected() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="foreground mask has shape"):
        run(ENGINE, vol, request(foreground=np.ones((1, 10, 10), bool)))


def test_pure_function_needs_both_marker_sets() -> None:
    img = np.zeros((8, 8))
    fg = np.zeros((8, 8), bool)
    fg[4, 4] = True
    with pytest.raises(ValueError, match="background markers"):
        marker_watershed(img, fg, np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="shape"):
        marker_watershed(img, fg, np.ones((4, 4), bool))


def test_a_constant_image_still_gives_a_region() -> None:
    vol = as_volume(np.zeros((32, 32), np.float32), "MR")
    prop = run(ENGINE, vol, request(positive=(on_plane(16, 16),)))
    assert 0 < prop.mask.sum() < 32 * 32
    assert prop.info["background"] == "image border"


# behaviour ----------------------------------------------------------------------------
def test_one_click_and_the_image_border_segment_a_disc() -> None:
    img, truth = disc_phantom()
    prop = run(ENGINE, as_volume(img), request(positive=(on_plane(64, 60),)))
    assert dice(prop.mask[0], truth) > 0.9
    assert prop.info["grid"] == 1


def test_a_negative_click_separates_touching_structures() -> None:
    img, first, _second = two_structures()
    req = request(positive=(on_plane(64, 44),), negative=(on_plane(64, 92),))
    prop = run(ENGINE, as_volume(img), req)
    assert prop.info["background"] == "markers + image border"
    assert dice(prop.mask[0], first) > 0.9


def test_the_box_border_is_the_default_background() -> None:
    img, _first, second = two_structures()
    box = (on_plane(30, 62), on_plane(100, 120))
    prop = run(ENGINE, as_volume(img), request(positive=(on_plane(64, 92),), box=box))
    assert prop.info["background"] == "box border"
    assert not prop.mask[0, :, :62].any()
    assert dice(prop.mask[0], second & (np.arange(128)[None, :] >= 62)) > 0.9


def test_scribbles_are_markers() -> None:
    img, first, _second = two_structures()
    fg = np.zeros((1, 128, 128), bool)
    fg[0, 50:80, 40] = True
    bg = np.zeros((1, 128, 128), bool)
    bg[0, 50:80, 95] = True
    bg[0, 120, 10:120] = True
    prop = run(ENGINE, as_volume(img), request(foreground=fg, background=bg))
    assert dice(prop.mask[0], first) > 0.9


def test_compactness_is_accepted() -> None:
    img, truth = disc_phantom()
    req = request(positive=(on_plane(64, 60),), params={"compactness": 0.01, "sigma": 0})
    prop = run(ENGINE, as_volume(img), req)
    assert dice(prop.mask[0], truth) > 0.9


def test_rgb_image() -> None:
    img, truth = disc_phantom(inside=200.0, outside=50.0, dtype=np.uint8)
    rgb = np.stack([img, img, 255 - img], axis=-1)
    prop = run(ENGINE, as_volume(rgb, "XC"), request(positive=(on_plane(64, 60),)))
    assert dice(prop.mask[0], truth) > 0.9


def test_coarse_to_fine_matches_a_full_resolution_flood() -> None:
    shape = (512, 512)
    truth = ellipse(shape, (250, 270), (120, 90)) | ellipse(shape, (120, 270), (40, 60))
    rng = np.random.default_rng(5)
    img = np.where(truth, 40.0, -60.0) + rng.normal(0, 15, shape)
    fg = np.zeros(shape, bool)
    fg[250, 270] = True
    bg = np.zeros(shape, bool)
    bg[0, :] = bg[-1, :] = bg[:, 0] = bg[:, -1] = True
    coarse, info = marker_watershed(img, fg, bg)
    fine, full_info = marker_watershed(img, fg, bg, coarse_limit=10**7)
    assert info["grid"] == 2 and full_info["grid"] == 1
    assert dice(coarse, fine) > 0.995
    assert dice(coarse, truth) > 0.95


def test_real_ct_spinal_canal() -> None:
    vol = ct_small()
    box = (on_plane(38, 44), on_plane(66, 74))
    prop = run(ENGINE, vol, request(positive=(on_plane(51, 59),), box=box))
    assert 100 < int(prop.mask.sum()) < 29 * 31
    assert prop.mask[0, 51, 59]
