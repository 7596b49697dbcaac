"""Threshold range: Otsu's suggestion, ranges, clicks, boxes, volumes."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.engines.base import EngineRequest
from medlabel.engines.classical.threshold import (
    ThresholdEngine,
    otsu_suggestion,
    threshold_bounds,
)
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

ENGINE = ThresholdEngine()


# edge cases ---------------------------------------------------------------------------
def test_unknown_method_is_rejected() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="method"):
        run(ENGINE, vol, request(params={"method": "triangle"}))


def test_nan_bounds_are_rejected_by_the_runner() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="finite"):
        run(ENGINE, vol, request(params={"low": "nan"}))


def test_low_above_high_is_rejected() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="must not exceed"):
        run(ENGINE, vol, request(params={"low": 10, "high": 5}))


def test_unknown_parameter_is_rejected() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="no parameter 'tolerance'"):
        run(ENGINE, vol, request(params={"tolerance": 1}))


def test_negative_clicks_are_not_taken() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="does not take negative"):
        run(ENGINE, vol, request(negative=(on_plane(1, 1),)))


def test_a_click_outside_the_image_is_rejected() -> None:
    vol = as_volume(disc_phantom()[0])
    with pytest.raises(ValueError, match="outside the image"):
        run(ENGINE, vol, request(positive=(on_plane(10, 400),)))


def test_a_per_slice_request_out_of_range_is_rejected() -> None:
    vol = Volume.from_spacing(np.zeros((3, 8, 8), np.int16))
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        run(ENGINE, vol, EngineRequest(axis=0, index=3))


def test_otsu_suggestion_rejects_bad_images() -> None:
    with pytest.raises(ValueError, match="greyscale"):
        otsu_suggestion(np.zeros(5))
    with pytest.raises(ValueError, match="empty"):
        otsu_suggestion(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="no finite"):
        otsu_suggestion(np.full((2, 2), np.nan))


def test_constant_image_selects_everything_with_range_and_nothing_above_otsu() -> None:
    vol = as_volume(np.full((16, 16), 42, np.int16))
    ranged = run(ENGINE, vol, request())
    assert ranged.info["otsu"] == 42.0
    assert ranged.mask.all()
    above = run(ENGINE, vol, request(params={"method": "otsu-above"}))
    assert not above.mask.any()


def test_a_click_outside_the_range_selects_nothing_and_says_so() -> None:
    img, _truth = disc_phantom()
    prop = run(ENGINE, as_volume(img), request(positive=(on_plane(2, 2),), params={"low": 0}))
    assert not prop.mask.any()
    assert "no click" in prop.info["warning"]


# behaviour ----------------------------------------------------------------------------
def test_otsu_separates_a_noisy_disc_from_its_background() -> None:
    img, truth = disc_phantom()
    otsu = otsu_suggestion(img)
    assert -60 < otsu < 20
    prop = run(ENGINE, as_volume(img), request(params={"method": "otsu-above"}))
    assert dice(prop.mask[0], truth) > 0.95
    assert prop.info["otsu"] == pytest.approx(otsu)
    assert prop.info["low"] == pytest.approx(otsu)
    assert prop.info["high"] == float(img.max())


def test_missing_bounds_default_to_otsu_and_the_maximum() -> None:
    img, truth = disc_phantom()
    prop = run(ENGINE, as_volume(img), request())
    assert prop.info["method"] == "range"
    assert prop.info["low"] == pytest.approx(prop.info["otsu"])
    assert dice(prop.mask[0], truth) > 0.95


def test_a_range_keeps_exactly_the_values_within_it() -> None:
    img, _ = disc_phantom()
    prop = run(ENGINE, as_volume(img), request(params={"low": -10, "high": 70}))
    assert np.array_equal(prop.mask[0], (img >= -10) & (img <= 70))
    assert prop.info["rule"] == "-10 <= value <= 70"


def test_only_high_below_otsu_keeps_the_dark_side() -> None:
    img, truth = disc_phantom()
    vol = as_volume(img)
    dark = run(ENGINE, vol, request(params={"high": -70}))
    assert dark.info["otsu"] > -70
    assert dark.info["low"] == float(img.min())
    assert not (dark.mask[0] & truth).any()
    band = run(ENGINE, vol, request(params={"high": 300}))  # above Otsu: Otsu..high
    assert band.info["low"] == pytest.approx(band.info["otsu"])


def test_otsu_method_follows_the_clicked_side() -> None:
    img, truth = disc_phantom()
    vol = as_volume(img)
    inside = run(ENGINE, vol, request(positive=(on_plane(64, 60),), params={"method": "otsu"}))
    outside = run(ENGINE, vol, request(positive=(on_plane(3, 3),), params={"method": "otsu"}))
    assert dice(inside.mask[0], truth) > 0.95
    assert dice(outside.mask[0], ~truth) > 0.95


def test_bounds_table() -> None:
    kw = {"otsu": 5.0, "lowest": 0.0, "highest": 9.0}
    assert threshold_bounds("otsu-below", 1, 2, **kw) == (0.0, 5.0, False)
    assert threshold_bounds("otsu-above", None, None, **kw) == (5.0, 9.0, True)
    assert threshold_bounds("range", 2.0, float("nan"), **kw) == (2.0, 9.0, False)


def test_clicks_keep_only_the_clicked_structure() -> None:
    img, first, second = two_structures()
    vol = as_volume(img)
    both = run(ENGINE, vol, request(params={"low": 30, "high": 300}))
    assert dice(both.mask[0], first | second) > 0.95
    clicked = run(ENGINE, vol, request(positive=(on_plane(64, 92),), params={"low": 130}))
    assert dice(clicked.mask[0], second) > 0.95
    assert not (clicked.mask[0] & first).any()


def test_a_box_limits_the_result_and_guides_otsu() -> None:
    img, _first, second = two_structures()
    box = (on_plane(30, 72), on_plane(100, 127))  # the bright disc and background only
    vol = as_volume(img)
    whole = run(ENGINE, vol, request(params={"method": "otsu-above"}))
    prop = run(ENGINE, vol, request(box=box, params={"method": "otsu-above"}))
    assert not prop.mask[0, :30].any() and not prop.mask[0, :, :72].any()
    assert prop.info["box"] == [30, 72, 101, 128]
    assert prop.info["otsu"] != whole.info["otsu"]
    assert dice(prop.mask[0], second) > 0.95


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float32, np.float64])
def test_pixel_types_give_the_same_answer(dtype: type) -> None:
    img, truth = disc_phantom(inside=1060.0, outside=900.0, dtype=dtype)
    prop = run(ENGINE, as_volume(img, "MR"), request(params={"method": "otsu-above"}))
    assert dice(prop.mask[0], truth) > 0.95


def test_rgb_images_are_thresholded_on_luminance() -> None:
    img, truth = disc_phantom(inside=200.0, outside=40.0, dtype=np.uint8)
    rgb = np.stack([img, img, img], axis=-1)
    prop = run(ENGINE, as_volume(rgb, "XC"), request(params={"low": 120}))
    assert prop.mask.shape == (1, 128, 128)
    assert dice(prop.mask[0], truth) > 0.95


def test_slices_along_other_axes() -> None:
    vol_array = np.zeros((20, 30, 40), np.int16)
    vol_array[5:15, 10:20, 12:30] = 100
    vol = Volume.from_spacing(vol_array, spacing=(2.0, 1.0, 1.0))
    prop = run(ENGINE, vol, EngineRequest(axis=2, index=20, params={"low": 50}))
    assert prop.mask.shape == (20, 30, 1)
    assert prop.origin == (0, 0, 20)
    assert np.array_equal(prop.full(vol.spatial_shape), (vol_array >= 50) & (np.arange(40) == 20))


# volumes ------------------------------------------------------------------------------
def test_whole_volume_with_a_click_selects_a_3d_component() -> None:
    shape = (24, 48, 48)
    one, two = ball(shape, (12, 16, 16), 8), ball(shape, (12, 32, 34), 7)
    rng = np.random.default_rng(1)
    arr = np.where(one | two, 300.0, 0.0) + rng.normal(0, 20, shape)
    vol = Volume.from_spacing(arr.astype(np.int16), spacing=(2.0, 1.0, 1.0), modality="CT")
    prop = run(ENGINE, vol, EngineRequest(index=None, positive=((12.0, 32.0, 34.0),)))
    assert prop.mask.shape == shape and prop.origin == (0, 0, 0)
    assert dice(prop.mask, two) > 0.95
    assert not (prop.mask & one).any()
    assert prop.prompt["index"] is None


def test_whole_volume_box_is_3d() -> None:
    arr = np.full((10, 10, 10), 5.0, np.float32)
    vol = Volume.from_spacing(arr)
    req = EngineRequest(index=None, box=((2.0, 2.0, 2.0), (4.0, 5.0, 6.0)), params={"low": 0})
    prop = run(ENGINE, vol, req)
    assert int(prop.mask.sum()) == 3 * 4 * 5


def test_real_ct_bone_threshold() -> None:
    vol = ct_small()
    prop = run(ENGINE, vol, request(positive=(on_plane(25, 58),), params={"low": 200}))
    assert prop.info["low"] == 200.0
    assert -1024 <= prop.info["otsu"] <= 1167
    assert 300 < int(prop.mask.sum()) < 4000
    assert prop.mask[0, 25, 58]
    assert prop.engine == "threshold" and prop.version == "1" and prop.seconds > 0
