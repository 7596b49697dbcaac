"""Tests of medlabel.io.png: PNGs it writes are decoded by Pillow and read_raster."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medlabel.io.png import encode_png_fast, write_png
from medlabel.io.raster import read_raster


@pytest.fixture(scope="module")
def ct_slice() -> np.ndarray:
    """A 512×512 CT slice windowed to uint8 (soft tissue), as the viewer renders it."""
    hu = pydicom.dcmread(get_testdata_file("693_UNCR.dcm")).pixel_array.astype(np.float32)
    return np.clip((hu + 160) / 400 * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def us_rgb() -> np.ndarray:
    return pydicom.dcmread(get_testdata_file("US1_UNCR.dcm")).pixel_array


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


# edge cases -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 4), np.float32),
        np.zeros((4, 4), np.int16),
        np.zeros((4, 4, 5), np.uint8),
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((0, 4), np.uint8),
        np.zeros((1, 4, 4, 3), np.uint8),
        np.zeros((4, 4, 3), np.uint16),  # 16-bit colour is not written
    ],
    ids=["float", "int16", "five-channels", "two-channels", "empty", "4d", "rgb16"],
)
def test_write_png_rejects_naming_the_shape(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"got"):
        write_png(image)


def test_encode_fast_is_uint8_only() -> None:
    with pytest.raises(ValueError, match="must be uint8; got uint16"):
        encode_png_fast(np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match="numpy array"):
        encode_png_fast([[1, 2]])  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (1, 1, 3)])
def test_tiny_images(shape: tuple[int, ...]) -> None:
    image = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape) * 31
    np.testing.assert_array_equal(_decode(encode_png_fast(image)), image)
    np.testing.assert_array_equal(_decode(write_png(image)), image)


def test_non_contiguous_views(ct_slice: np.ndarray) -> None:
    for view in (ct_slice[::2, ::3], ct_slice.T, ct_slice[100:50:-1]):
        np.testing.assert_array_equal(_decode(encode_png_fast(view)), view)


# round trips ----------------------------------------------------------------------------
def test_write_png_grey_8_and_16_bit(ct_slice: np.ndarray) -> None:
    hu = pydicom.dcmread(get_testdata_file("693_UNCR.dcm")).pixel_array
    u16 = (hu.astype(np.int32) + 2048).astype(np.uint16)
    for image, mode in [(ct_slice, "L"), (u16, "I;16")]:
        data = write_png(image)
        im = Image.open(io.BytesIO(data))
        assert im.mode == mode
        np.testing.assert_array_equal(np.asarray(im), image)
        v = read_raster(data, name="x.png")
        assert v.array.dtype == image.dtype
        np.testing.assert_array_equal(v.array[0], image)


def test_write_png_colour(us_rgb: np.ndarray) -> None:
    rgba = np.dstack([us_rgb, us_rgb[..., 0]])
    for image, mode in [(us_rgb, "RGB"), (rgba, "RGBA")]:
        im = Image.open(io.BytesIO(write_png(image)))
        assert im.mode == mode
        np.testing.assert_array_equal(np.asarray(im), image)


def test_fast_encoding_round_trips_and_compresses(ct_slice: np.ndarray, us_rgb: np.ndarray) -> None:
    fast = encode_png_fast(ct_slice)
    np.testing.assert_array_equal(_decode(fast), ct_slice)
    # Filtering and deflate work: a CT slice (large flat areas) shrinks well below raw size.
    assert len(fast) < ct_slice.nbytes / 4
    np.testing.assert_array_equal(_decode(encode_png_fast(us_rgb)), us_rgb)
    # The export encoder never produces larger files than the fast one.
    for image in (ct_slice, us_rgb):
        assert len(write_png(image)) <= len(encode_png_fast(image))
