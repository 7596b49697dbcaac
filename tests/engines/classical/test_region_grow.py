"""Seeded region growing: seeds, tolerance, boxes, 3D growth."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.engines.base import EngineRequest
from medlabel.engines.classical import region_grow
from medlabel.engines.classical.region_grow import RegionGrowEngine, grow_region
from medlabel.engines.runner import run
from medlabel.imaging.volume import Volume
from tests.engines.classical.phantoms import (
    as_volume,
    ball,
    ct_small,
    dice,
    disc_phantom,
    on_plane,
    request,
    two_structures,
)

ENGINE = RegionGrowEngine()


# edge cases ---------------------------------------------------------------------------
def test_a_click_is_required() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="needs a positive prompt"):
        run(ENGINE, vol, request())
    box = (on_plane(1, 1), on_plane(9, 9))
    with pytest.raises(ValueError, match="needs a positive prompt"):
        run(ENGINE, vol, request(box=box))


def test_an_empty_scribble_does_not_count_as_a_prompt() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match=r"does not take foreground|needs a positive"):
        run(ENGINE, vol, request(foreground=np.ones((1, 128, 128), bool)))
    with pytest.raises(ValueError, match="needs a positive"):
        run(ENGINE, vol, request(foreground=np.zeros((1, 128, 128), bool)))


def test_bad_parameters_are_rejected() -> None:
    vol = as_volume(disc_phantom()[0])
    click = (on_plane(64, 60),)
    with pytest.raises(ValueError, match="tolerance"):
        run(ENGINE, vol, request(positive=click, params={"tolerance": -1}))
    with pytest.raises(ValueError, match="connectivity"):
        run(ENGINE, vol, request(positive=click, params={"connectivity": 4}))
    with pytest.raises(ValueError, match="smoothing"):
        run(ENGINE, vol, request(positive=click, params={"smoothing": "lots"}))


def test_a_click_outside_the_box_is_refused() -> None:
    vol = as_volume(disc_phantom()[0])
    req = request(positive=(on_plane(64, 60),), box=(on_plane(0, 0), on_plane(20, 20)))
    with pytest.raises(ValueError, match="inside the box"):
        run(ENGINE, vol, req)


def test_pure_function_validates_seeds() -> None:
    with pytest.raises(ValueError, match="at least one seed"):
        grow_region(np.zeros((4, 4)), [])
    with pytest.raises(ValueError, match="outside the image"):
        grow_region(np.zeros((4, 4)), [(4, 0)])
    with pytest.raises(ValueError, match="2D or 3D"):
        grow_region(np.zeros(4), [(1,)])


def test_a_constant_image_grows_everywhere() -> None:
    vol = as_volume(np.full((20, 30), 7, np.uint16), "MR")
    prop = run(ENGINE, vol, request(positive=(on_plane(3, 3),)))
    assert prop.mask.all()
    assert prop.info["tolerances"][0] > 0


# behaviour ----------------------------------------------------------------------------
def test_adaptive_tolerance_segments_a_noisy_disc() -> None:
    img, truth = disc_phantom()
    prop = run(ENGINE, as_volume(img), request(positive=(on_plane(64, 60),)))
    assert dice(prop.mask[0], truth) > 0.95
    assert 10 < prop.info["tolerances"][0] < 60  # 2.5 x the noise (12)
    assert prop.info["seed_values"][0] == pytest.approx(60, abs=6)


def test_growth_stops_at_a_touching_brighter_structure() -> None:
    img, first, second = two_structures()
    vol = as_volume(img)
    prop = run(ENGINE, vol, request(positive=(on_plane(64, 44),)))
    assert dice(prop.mask[0], first) > 0.95
    assert (prop.mask[0] & second).sum() < 0.01 * second.sum()  # at most the seam
    both = run(ENGINE, vol, request(positive=(on_plane(64, 44), on_plane(64, 92))))
    assert dice(both.mask[0], first | second) > 0.95


def test_a_large_tolerance_leaks_and_a_box_contains_it() -> None:
    img, _first, _second = two_structures()
    vol = as_volume(img)
    leak = run(ENGINE, vol, request(positive=(on_plane(64, 44),), params={"tolerance": 400}))
    assert leak.mask.all()
    box = (on_plane(30, 10), on_plane(98, 70))
    boxed = run(
        ENGINE, vol, request(positive=(on_plane(64, 44),), box=box, params={"tolerance": 400})
    )
    assert int(boxed.mask.sum()) == 69 * 61


def test_smoothing_zero_and_connectivity_two() -> None:
    img = np.zeros((5, 5), np.int16)
    img[1, 1] = img[2, 2] = img[3, 3] = 10
    vol = as_volume(img, "MR")
    faces = run(
        ENGINE, vol, request(positive=(on_plane(2, 2),), params={"tolerance": 1, "smoothing": 0})
    )
    assert int(faces.mask.sum()) == 1
    corners = run(
        ENGINE,
        vol,
        request(
            positive=(on_plane(2, 2),), params={"tolerance": 1, "smoothing": 0, "connectivity": 2}
        ),
    )
    assert int(corners.mask.sum()) == 3


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float32])
def test_pixel_types_and_ranges(dtype: type) -> None:
    img, truth = disc_phantom(inside=30000.0, outside=20000.0, noise=800.0, dtype=dtype)
    prop = run(ENGINE, as_volume(img, "MR"), request(positive=(on_plane(64, 60),)))
    assert dice(prop.mask[0], truth) > 0.95


def test_rgb_image() -> None:
    img, truth = disc_phantom(inside=180.0, outside=60.0, dtype=np.uint8)
    rgb = np.stack([img, img // 2, img], axis=-1)
    prop = run(ENGINE, as_volume(rgb, "XC"), request(positive=(on_plane(64, 60),)))
    assert dice(prop.mask[0], truth) > 0.95


# volumes ------------------------------------------------------------------------------
def _ball_volume(shape: tuple[int, int, int], radius: float) -> tuple[Volume, np.ndarray]:
    centre = tuple(n / 2 for n in shape)
    truth = ball(shape, centre, radius)
    rng = np.random.default_rng(3)
    arr = np.where(truth, 50.0, -50.0) + rng.normal(0, 10, shape)
    return Volume.from_spacing(arr.astype(np.int16), modality="CT"), truth


def test_growth_in_3d() -> None:
    vol, truth = _ball_volume((30, 40, 40), 10)
    prop = run(ENGINE, vol, EngineRequest(index=None, positive=((15.0, 20.0, 20.0),)))
    assert prop.mask.shape == (30, 40, 40)
    assert dice(prop.mask, truth) > 0.95
    flat = run(ENGINE, vol, EngineRequest(axis=0, index=15, positive=((15.0, 20.0, 20.0),)))
    assert flat.mask.shape == (1, 40, 40)
    assert dice(flat.mask[0], truth[15]) > 0.95


def test_windowed_growth_in_large_volumes_matches_whole_growth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vol, truth = _ball_volume((40, 120, 120), 30)  # larger than the first window
    req = EngineRequest(index=None, positive=((20.0, 60.0, 60.0),))
    monkeypatch.setattr(region_grow, "WINDOW_ABOVE", 1000)
    windowed = run(ENGINE, vol, req)
    monkeypatch.setattr(region_grow, "WINDOW_ABOVE", 10**9)
    whole = run(ENGINE, vol, req)
    assert np.array_equal(windowed.mask, whole.mask)
    assert dice(whole.mask, truth) > 0.95


def test_3d_box_limits_growth() -> None:
    vol, truth = _ball_volume((30, 40, 40), 10)
    box = ((15.0, 0.0, 0.0), (29.0, 39.0, 39.0))
    prop = run(ENGINE, vol, EngineRequest(index=None, positive=((20.0, 20.0, 20.0),), box=box))
    assert not prop.mask[:15].any()
    assert dice(prop.mask[15:], truth[15:]) > 0.95


def test_real_ct_spinal_canal() -> None:
    vol = ct_small()
    prop = run(ENGINE, vol, request(positive=(on_plane(51, 59),)))
    rows, cols = np.nonzero(prop.mask[0])
    assert 100 < len(rows) < 1500
    assert rows.min() > 30 and rows.max() < 75 and cols.min() > 35 and cols.max() < 85
