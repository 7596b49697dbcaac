"""Random walker: markers, default background, boxes, coarse grids, probability."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.engines.classical.random_walker import RandomWalkerEngine, walker_probability
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

ENGINE = RandomWalkerEngine()


# edge cases ---------------------------------------------------------------------------
def test_an_object_marker_is_required() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="needs a foreground or positive prompt"):
        run(ENGINE, vol, request(box=(on_plane(1, 1), on_plane(30, 30))))


def test_object_markers_outside_the_box_are_refused() -> None:
    vol = as_volume(disc_phantom()[0])
    req = request(positive=(on_plane(64, 60),), box=(on_plane(0, 0), on_plane(20, 20)))
    with pytest.raises(ValueError, match="inside the box"):
        run(ENGINE, vol, req)


def test_bad_parameters_are_rejected() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="beta"):
        run(ENGINE, vol, request(positive=(on_plane(64, 60),), params={"beta": 0}))
    with pytest.raises(ValueError, match="pure"):
        run(ENGINE, vol, request(positive=(on_plane(64, 60),), params={"pure": 1}))
    with pytest.raises(ValueError, match="beta must be positive"):
        walker_probability(np.zeros((4, 4)), np.eye(4, dtype=bool), ~np.eye(4, dtype=bool), beta=0)


def test_pure_function_needs_both_marker_sets() -> None:
    fg = np.zeros((8, 8), bool)
    fg[4, 4] = True
    with pytest.raises(ValueError, match="background markers"):
        walker_probability(np.zeros((8, 8)), fg, np.zeros((8, 8), bool))


def test_a_constant_image_gives_a_valid_probability() -> None:
    vol = as_volume(np.full((32, 32), 3, np.uint16), "MR")
    prop = run(ENGINE, vol, request(positive=(on_plane(16, 16),)))
    assert prop.probability is not None
    assert prop.probability.min() >= 0.0 and prop.probability.max() <= 1.0
    assert prop.mask[0, 16, 16]


def test_fully_marked_images_need_no_walk() -> None:
    fg = np.zeros((4, 4), bool)
    fg[:2] = True
    prob, _ = walker_probability(np.zeros((4, 4)), fg, ~fg)
    assert prob.tolist() == fg.astype(float).tolist()


# behaviour ----------------------------------------------------------------------------
def test_click_and_box_segment_a_disc() -> None:
    img, truth = disc_phantom()
    box = (on_plane(28, 30), on_plane(100, 90))
    prop = run(ENGINE, as_volume(img), request(positive=(on_plane(64, 60),), box=box))
    assert prop.info["background"] == "box border"
    assert dice(prop.mask[0], truth) > 0.9
    assert prop.probability is not None and prop.probability.shape == prop.mask.shape


def test_scribbles_separate_touching_structures() -> None:
    img, first, _second = two_structures()
    fg = np.zeros((1, 128, 128), bool)
    fg[0, 50:80, 44] = True
    bg = np.zeros((1, 128, 128), bool)
    bg[0, 55:75, 92] = True
    bg[0, 5, 5:120] = True
    bg[0, 122, 5:120] = True
    prop = run(ENGINE, as_volume(img), request(foreground=fg, background=bg))
    assert prop.info["background"] == "markers + window border"
    assert dice(prop.mask[0], first) > 0.9


def test_a_click_without_background_uses_the_image_border() -> None:
    img, truth = disc_phantom()
    prop = run(ENGINE, as_volume(img), request(positive=(on_plane(64, 60),)))
    assert prop.info["background"] == "image border"
    assert dice(prop.mask[0], truth) > 0.9


def test_large_images_are_solved_on_a_coarse_grid() -> None:
    shape = (512, 512)
    truth = ellipse(shape, (256, 256), (110, 90))
    rng = np.random.default_rng(2)
    img = (np.where(truth, 300.0, 100.0) + rng.normal(0, 20, shape)).astype(np.uint16)
    box = ((0.0, 130.0, 150.0), (0.0, 380.0, 360.0))
    prop = run(ENGINE, as_volume(img, "MR"), request(positive=((0.0, 256.0, 256.0),), box=box))
    assert prop.info["grid"] > 1
    assert dice(prop.mask[0], truth) > 0.95


def test_rgb_image() -> None:
    img, truth = disc_phantom(inside=200.0, outside=50.0, dtype=np.uint8)
    rgb = np.stack([img, img, img], axis=-1)
    box = (on_plane(28, 30), on_plane(100, 90))
    prop = run(ENGINE, as_volume(rgb, "XC"), request(positive=(on_plane(64, 60),), box=box))
    assert dice(prop.mask[0], truth) > 0.9


def test_real_ct_spinal_canal() -> None:
    vol = ct_small()
    box = (on_plane(38, 44), on_plane(66, 74))
    prop = run(ENGINE, vol, request(positive=(on_plane(51, 59),), box=box))
    assert 100 < int(prop.mask.sum()) < 29 * 31
    assert prop.mask[0, 51, 59]
