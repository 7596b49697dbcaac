"""Edge-aware fill: closed outlines, leaks refused, boxes, clicks on edges."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.engines.classical.edge_fill import EdgeFillEngine, edge_fill
from medlabel.engines.runner import run
from tests.engines.classical.phantoms import (
    as_volume,
    ct_small,
    dice,
    disc_phantom,
    on_plane,
    request,
    two_structures,
)

ENGINE = EdgeFillEngine()


# edge cases ---------------------------------------------------------------------------
def test_a_click_is_required() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="needs a positive prompt"):
        run(ENGINE, vol, request())


def test_quantiles_out_of_order_or_range_are_rejected() -> None:
    vol = as_volume(disc_phantom()[0])
    click = (on_plane(64, 60),)
    with pytest.raises(ValueError, match="low <= high"):
        run(ENGINE, vol, request(positive=click, params={"low": 0.95, "high": 0.9}))
    with pytest.raises(ValueError, match="high"):
        run(ENGINE, vol, request(positive=click, params={"high": 1.5}))
    with pytest.raises(ValueError, match="max_fraction"):
        run(ENGINE, vol, request(positive=click, params={"max_fraction": -0.1}))


def test_a_click_outside_the_box_is_refused() -> None:
    vol = as_volume(disc_phantom()[0])
    req = request(positive=(on_plane(64, 60),), box=(on_plane(0, 0), on_plane(20, 20)))
    with pytest.raises(ValueError, match="inside the box"):
        run(ENGINE, vol, req)


def test_pure_function_validates_seeds() -> None:
    with pytest.raises(ValueError, match="at least one seed"):
        edge_fill(np.zeros((8, 8)), [])
    with pytest.raises(ValueError, match="outside the image"):
        edge_fill(np.zeros((8, 8)), [(8, 0)])


def test_a_constant_image_floods_and_is_refused() -> None:
    vol = as_volume(np.full((64, 64), 9, np.int16), "MR")
    prop = run(ENGINE, vol, request(positive=(on_plane(30, 30),)))
    assert not prop.mask.any()
    assert prop.info["fraction"] == 1.0
    assert "max_fraction" in prop.info["warning"]
    allowed = run(ENGINE, vol, request(positive=(on_plane(30, 30),), params={"max_fraction": 1}))
    assert allowed.mask.all()


def open_ring() -> np.ndarray:
    """A bright ring (200) on a dark background (-100) with a 20-pixel opening on the
    right: its inside is connected to the outside."""
    r, c = np.ogrid[:128, :128]
    d2 = (r - 64) ** 2 + (c - 64) ** 2
    ring = (d2 >= 20**2) & (d2 <= 26**2) & ~((c > 80) & (np.abs(r - 64) < 10))
    rng = np.random.default_rng(4)
    return (np.where(ring, 200.0, -100.0) + rng.normal(0, 2, (128, 128))).astype(np.int16)


def test_a_leaking_fill_returns_an_empty_mask_with_a_warning() -> None:
    prop = run(ENGINE, as_volume(open_ring()), request(positive=(on_plane(64, 64),)))
    assert not prop.mask.any()
    assert prop.info["fraction"] > 0.5
    assert "gaps" in prop.info["warning"]


def test_a_box_contains_a_leak() -> None:
    box = (on_plane(30, 30), on_plane(98, 98))
    prop = run(ENGINE, as_volume(open_ring()), request(positive=(on_plane(64, 64),), box=box))
    assert prop.mask.any() and "warning" not in prop.info
    assert not prop.mask[0, :30].any() and not prop.mask[0, :, 99:].any()


def test_a_click_on_an_edge_moves_inside() -> None:
    img = np.zeros((40, 40))
    img[10:30, 10:30] = 100.0
    mask, info = edge_fill(img, [(10, 20)], sigma=1.0)
    assert info["seeds"] != [[10, 20]]
    assert mask[20, 20] or mask[2, 2]


# behaviour ----------------------------------------------------------------------------
def test_fills_a_noisy_disc() -> None:
    img, truth = disc_phantom()
    prop = run(ENGINE, as_volume(img), request(positive=(on_plane(64, 60),)))
    assert dice(prop.mask[0], truth) > 0.9
    assert 0 < prop.info["fraction"] < 0.5


def test_touching_structures_are_filled_separately_and_together() -> None:
    img, first, second = two_structures()
    vol = as_volume(img)
    one = run(ENGINE, vol, request(positive=(on_plane(64, 90),)))
    assert dice(one.mask[0], second) > 0.9
    both = run(ENGINE, vol, request(positive=(on_plane(64, 90), on_plane(64, 40))))
    assert dice(both.mask[0], first | second) > 0.9


def test_a_box_limits_the_fill() -> None:
    img, truth = disc_phantom(noise=2.0)
    img[56:73, 80:] = 60
    box = (on_plane(30, 30), on_plane(98, 88))
    prop = run(ENGINE, as_volume(img), request(positive=(on_plane(64, 50),), box=box))
    assert not prop.mask[0, :, 89:].any()
    assert dice(prop.mask[0], truth) > 0.9


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_pixel_types(dtype: type) -> None:
    img, truth = disc_phantom(inside=3000.0, outside=1000.0, noise=200.0, dtype=dtype)
    prop = run(ENGINE, as_volume(img, "MR"), request(positive=(on_plane(64, 60),)))
    assert dice(prop.mask[0], truth) > 0.9


def test_rgb_image() -> None:
    img, truth = disc_phantom(inside=200.0, outside=50.0, dtype=np.uint8)
    rgb = np.stack([img, img, img], axis=-1)
    prop = run(ENGINE, as_volume(rgb, "XC"), request(positive=(on_plane(64, 60),)))
    assert dice(prop.mask[0], truth) > 0.9


def test_real_ct_spinal_canal_leaks_into_the_foramen_unless_boxed() -> None:
    vol = ct_small()
    click = (on_plane(51, 59),)
    open_ = run(ENGINE, vol, request(positive=click))
    assert not open_.mask.any() and "gaps" in open_.info["warning"]
    box = (on_plane(40, 42), on_plane(62, 72))
    boxed = run(ENGINE, vol, request(positive=click, box=box))
    assert 150 < int(boxed.mask.sum()) < 23 * 31
    assert boxed.mask[0, 51, 59]
