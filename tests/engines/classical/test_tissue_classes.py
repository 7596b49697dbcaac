"""Tissue classes: k-means and Gaussian mixtures, picking, determinism, boxes."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.engines.classical.tissue_classes import TissueClassesEngine, fit_tissue_classes
from medlabel.engines.runner import run
from tests.engines.classical.phantoms import (
    as_volume,
    ct_small,
    dice,
    ellipse,
    on_plane,
    request,
)

ENGINE = TissueClassesEngine()


def brain_phantom(seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """An MR-like 160×160 uint16 image: background (20), 'CSF' (300), 'grey' (600),
    'white' (900), noise 25; returns it and the four class masks, darkest first."""
    shape = (160, 160)
    head = ellipse(shape, (80, 80), (70, 60))
    white = ellipse(shape, (80, 80), (35, 28))
    grey = ellipse(shape, (80, 80), (55, 45)) & ~white
    csf = head & ~grey & ~white
    rng = np.random.default_rng(seed)
    img = np.full(shape, 20.0)
    img[csf], img[grey], img[white] = 300.0, 600.0, 900.0
    img += rng.normal(0, 25, shape)
    return np.clip(img, 0, None).astype(np.uint16), [~head, csf, grey, white]


# edge cases ---------------------------------------------------------------------------
def test_pick_minus_one_needs_a_click() -> None:
    vol = as_volume(brain_phantom()[0], "MR")
    with pytest.raises(ValueError, match="click on the tissue"):
        run(ENGINE, vol, request())


def test_a_box_alone_picks_the_class_at_its_centre() -> None:
    img, truths = brain_phantom()
    vol = as_volume(img, "MR")
    rows, cols = np.nonzero(truths[3])  # white matter
    r, c = int(np.median(rows)), int(np.median(cols))
    while not truths[3][r, c]:
        c += 1
    box = (on_plane(r - 2, c - 2), on_plane(r + 2, c + 2))
    p = run(ENGINE, vol, request(box=box))
    mask = p.full(vol.spatial_shape)[0]
    assert p.info["centre_pick"] and mask[r, c] and mask.sum() > 0
    assert (mask & ~truths[3]).sum() <= 0.1 * mask.sum()


def test_pick_beyond_the_classes_is_rejected() -> None:
    vol = as_volume(brain_phantom()[0], "MR")
    with pytest.raises(ValueError, match="names no class"):
        run(ENGINE, vol, request(params={"classes": 3, "pick": 3}))
    with pytest.raises(ValueError, match="classes"):
        run(ENGINE, vol, request(params={"classes": 7, "pick": 0}))
    with pytest.raises(ValueError, match="method"):
        run(ENGINE, vol, request(params={"method": "dbscan", "pick": 0}))


def test_pure_function_validates_inputs() -> None:
    with pytest.raises(ValueError, match="no pixel"):
        fit_tissue_classes(np.zeros(0))
    with pytest.raises(ValueError, match="NaN"):
        fit_tissue_classes(np.array([1.0, np.nan]))


def test_a_constant_image_is_one_class_with_a_warning() -> None:
    vol = as_volume(np.full((20, 20), 5.0, np.float32), "MR")
    prop = run(ENGINE, vol, request(positive=(on_plane(3, 3),)))
    assert prop.mask.all()
    assert prop.info["class_means"] == [5.0]
    assert "1 distinct" in prop.info["warning"]


def test_few_distinct_values_reduce_the_classes() -> None:
    img = np.zeros((10, 10), np.uint8)
    img[5:] = 200
    prop = run(ENGINE, as_volume(img, "MR"), request(params={"classes": 4, "pick": 1}))
    assert prop.info["classes"] == 2
    assert prop.info["class_means"] == [0.0, 200.0]
    assert prop.mask[0, 5:].all() and not prop.mask[0, :5].any()


# behaviour ----------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_classes_recover_the_phantom_tissues(method: str) -> None:
    img, truths = brain_phantom()
    vol = as_volume(img, "MR")
    prop = run(ENGINE, vol, request(params={"method": method, "classes": 4, "pick": 2}))
    means = prop.info["class_means"]
    assert means == sorted(means)
    assert np.allclose(means, [20, 300, 600, 900], atol=25)
    assert dice(prop.mask[0], truths[2]) > 0.95
    clicked = run(
        ENGINE,
        vol,
        request(positive=(on_plane(80, 80),), params={"method": method, "classes": 4}),
    )
    assert clicked.info["picked"] == [3]
    assert dice(clicked.mask[0], truths[3]) > 0.95


def test_two_clicks_pick_two_classes() -> None:
    img, truths = brain_phantom()
    req = request(positive=(on_plane(80, 80), on_plane(80, 44)), params={"classes": 4})
    prop = run(ENGINE, as_volume(img, "MR"), req)
    assert prop.info["picked"] == [2, 3]
    assert dice(prop.mask[0], truths[2] | truths[3]) > 0.95


def test_results_are_deterministic_and_record_the_seed() -> None:
    img, _ = brain_phantom()
    big = np.tile(img, (3, 3))  # more pixels than the subsample
    vol = as_volume(big, "MR")
    req = request(params={"method": "gmm", "classes": 4, "pick": 1})
    a, b = run(ENGINE, vol, req), run(ENGINE, vol, req)
    assert np.array_equal(a.mask, b.mask)
    assert a.info["class_means"] == b.info["class_means"]
    assert a.info["seed"] == 0
    assert a.info["samples"] == 65536


def test_a_box_fits_and_limits_the_classes() -> None:
    img, _truths = brain_phantom()
    box = (on_plane(60, 60), on_plane(100, 100))  # white matter and a little grey
    req = request(box=box, params={"classes": 2, "pick": 1})
    prop = run(ENGINE, as_volume(img, "MR"), req)
    assert prop.info["class_means"][1] == pytest.approx(900, abs=25)
    assert not prop.mask[0, :60].any() and not prop.mask[0, 101:].any()


def test_rgb_image() -> None:
    img, truths = brain_phantom()
    rgb = np.stack([img, img, img], axis=-1).astype(np.float32)
    prop = run(ENGINE, as_volume(rgb, "XC"), request(params={"classes": 4, "pick": 3}))
    assert dice(prop.mask[0], truths[3]) > 0.95


def test_real_ct_classes() -> None:
    vol = ct_small()
    prop = run(ENGINE, vol, request(positive=(on_plane(25, 58),), params={"classes": 3}))
    means = prop.info["class_means"]
    assert len(means) == 3 and means == sorted(means)
    assert prop.info["picked"] == [2]  # bone is the brightest class
    assert prop.mask[0, 25, 58]
