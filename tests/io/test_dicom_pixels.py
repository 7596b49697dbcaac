"""decode_frames on real files: compressed = uncompressed, HU, MONOCHROME1, colour."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut
from pydicom.sequence import Sequence

from medlabel.io.dicom import (
    apply_rescale,
    decode_frames,
    image_metadata,
    read_dataset,
    rescale_parameters,
)
from tests.io.conftest import DICOMDIR_TESTS, data_path, read_testdata, to_bytes

# (uncompressed, compressed) pairs of pydicom / pydicom-data holding the same pixels
LOSSLESS_PAIRS = [
    ("emri_small.dcm", "emri_small_RLE.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm"),
    ("emri_small.dcm", "emri_small_big_endian.dcm"),
    ("MR_small.dcm", "MR_small_RLE.dcm"),
    ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
    ("MR_small.dcm", "MR_small_bigendian.dcm"),
    ("MR_small.dcm", "MR_small_implicit.dcm"),
    ("US1_UNCR.dcm", "US1_J2KR.dcm"),
    ("US1_UNCI.dcm", "US1_J2KI.dcm"),  # decompressed copy of the lossy file
    ("RG1_UNCR.dcm", "RG1_J2KR.dcm"),
    ("RG1_UNCI.dcm", "RG1_J2KI.dcm"),
    ("MR2_UNCR.dcm", "MR2_J2KR.dcm"),
    ("693_UNCR.dcm", "693_J2KR.dcm"),
    ("JPEG2000_UNC.dcm", "JPEG2000.dcm"),
    ("SC_rgb.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb.dcm", "SC_rgb_expb.dcm"),
    ("SC_rgb.dcm", "SC_rgb_gdcm_KY.dcm"),
    ("SC_rgb.dcm", "SC_rgb_jpeg_gdcm.dcm"),
    ("SC_rgb_16bit.dcm", "SC_rgb_rle_16bit.dcm"),
    ("SC_rgb_32bit.dcm", "SC_rgb_rle_32bit.dcm"),
    ("SC_rgb_2frame.dcm", "SC_rgb_rle_2frame.dcm"),
    ("SC_rgb_dcmtk_ebcr_dcmd.dcm", "SC_rgb_dcmtk_+eb+cr.dcm"),
    ("SC_rgb_dcmtk_ebcyn1_dcmd.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm"),
    ("SC_rgb_dcmtk_ebcyn2_dcmd.dcm", "SC_rgb_dcmtk_+eb+cy+n2.dcm"),
    ("SC_rgb_dcmtk_ebcynp_dcmd.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm"),
    ("SC_rgb_dcmtk_ebcys2_dcmd.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm"),
    ("SC_rgb_dcmtk_ebcys4_dcmd.dcm", "SC_rgb_dcmtk_+eb+cy+s4.dcm"),
    ("SC_rgb_jpeg_dcmd.dcm", "SC_rgb_jpeg.dcm"),
    ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm"),
    ("OBXXXX1A.dcm", "OBXXXX1A_expb.dcm"),
    ("OBXXXX1A_2frame.dcm", "OBXXXX1A_rle_2frame.dcm"),
    ("gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm"),
]


@pytest.mark.parametrize(("plain", "compressed"), LOSSLESS_PAIRS, ids=lambda n: n)
def test_compressed_decodes_equal_to_uncompressed(plain: str, compressed: str) -> None:
    a = decode_frames(read_testdata(plain), name=plain)
    b = decode_frames(read_testdata(compressed), name=compressed)
    assert a.shape == b.shape
    assert a.dtype == b.dtype
    assert a.dtype.isnative
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "name", ["SC_ybr_full_uncompressed.dcm", "SC_ybr_full_422_uncompressed.dcm"]
)
def test_ybr_is_converted_to_rgb(name: str) -> None:
    rgb = decode_frames(read_testdata("SC_rgb.dcm"))
    ybr = decode_frames(read_testdata(name))
    assert ybr.shape == rgb.shape == (1, 100, 100, 3)
    # YCbCr <-> RGB rounding only: the colours are those of the RGB file
    assert np.abs(ybr.astype(int) - rgb.astype(int)).max() <= 6


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("CT_small.dcm", (1, 128, 128)),
        ("emri_small.dcm", (10, 64, 64)),
        ("US1_J2KR.dcm", (1, 480, 640, 3)),
        ("SC_rgb_rle_2frame.dcm", (2, 100, 100, 3)),
        ("examples_ybr_color.dcm", (30, 240, 320, 3)),
        ("SC_rgb_small_odd.dcm", (1, 3, 3, 3)),  # NumberOfFrames = 1
    ],
)
def test_frames_axis_is_always_first(name: str, shape: tuple[int, ...]) -> None:
    assert decode_frames(read_testdata(name)).shape == shape


# --------------------------------------------------------------------------- modality units
def test_ct_rescale_to_hounsfield_units_keeps_int16() -> None:
    ds = read_testdata("CT_small.dcm")
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, -1024.0)
    hu = decode_frames(ds)
    assert hu.dtype == np.int16
    np.testing.assert_array_equal(hu[0], ds.pixel_array.astype(np.int32) - 1024)
    assert image_metadata(ds)["units"] == "HU"


def test_non_integer_slope_gives_float32() -> None:
    ds = read_testdata("MR2_UNCR.dcm")
    out = decode_frames(ds)
    assert out.dtype == np.float32
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)


def test_modality_lut_sequence_is_applied() -> None:
    ds = read_testdata("mlut_18.dcm")
    out = decode_frames(ds)
    lut = ds.ModalityLUTSequence[0]
    first_mapped = int(lut.LUTDescriptor[1])
    assert out.shape == (1, 512, 512)
    raw = ds.pixel_array
    index = np.clip(raw.astype(np.int64) - first_mapped, 0, int(lut.LUTDescriptor[0]) - 1)
    np.testing.assert_array_equal(out[0], np.asarray(lut.LUTData)[index])


@pytest.mark.parametrize(
    ("values", "slope", "intercept", "dtype"),
    [
        ([0, 4095], 1.0, -1024.0, np.int16),
        ([0, 65535], 1.0, -1024.0, np.int32),  # does not fit int16
        ([0, 20000], 2.0, -8192.0, np.int32),  # slope * value alone overflows int16
        ([0, 100], 0.5, 0.0, np.float32),
        ([0, 100], 1.0, 0.25, np.float32),
    ],
)
def test_apply_rescale_dtype(values: list[int], slope: float, intercept: float, dtype) -> None:
    arr = np.array([[values]], dtype=np.uint16)
    out = apply_rescale(arr, np.array([slope]), np.array([intercept]))
    assert out.dtype == dtype
    assert out.shape == (1, 1, 2)
    np.testing.assert_allclose(out, np.array([[values]]) * slope + intercept)


def test_apply_rescale_identity_keeps_the_stored_dtype() -> None:
    arr = np.array([[[1, 2]]], dtype=np.uint16)
    assert apply_rescale(arr, np.ones(1), np.zeros(1)) is arr


def test_apply_rescale_validates_shapes() -> None:
    with pytest.raises(ValueError, match="one slope and intercept per frame"):
        apply_rescale(np.zeros((2, 3, 3)), np.ones(3), np.zeros(3))


def test_enhanced_ct_rescale_from_shared_functional_groups() -> None:
    ds = read_testdata("eCT_Supplemental.dcm")
    out = decode_frames(ds)
    assert out.shape == (2, 512, 512)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, ds.pixel_array.astype(np.int32) - 1024)


def test_enhanced_per_frame_rescale() -> None:
    ds = copy.deepcopy(pydicom.dcmread(data_path("eCT_Supplemental.dcm")))
    for index, slope in enumerate([1, 3]):
        item = Dataset()
        item.RescaleSlope, item.RescaleIntercept, item.RescaleType = slope, -1000 * index, "US"
        ds.PerFrameFunctionalGroupsSequence[index].PixelValueTransformationSequence = Sequence(
            [item]
        )
    del ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence
    ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(to_bytes(ds)))
    slopes, intercepts = rescale_parameters(ds, 2)
    assert slopes.tolist() == [1.0, 3.0] and intercepts.tolist() == [0.0, -1000.0]
    out = decode_frames(ds)
    raw = ds.pixel_array.astype(np.int64)
    assert out.dtype in (np.int16, np.int32)
    np.testing.assert_array_equal(out[0], raw[0])
    np.testing.assert_array_equal(out[1], raw[1] * 3 - 1000)


# --------------------------------------------------------------------------- MONOCHROME1, colour
def test_monochrome1_is_inverted_within_the_stored_range() -> None:
    ds = read_testdata("RG1_UNCR.dcm")
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.BitsStored == 15
    out = decode_frames(ds)
    raw = ds.pixel_array
    assert out.dtype == raw.dtype
    np.testing.assert_array_equal(out[0], (2**15 - 1) - raw.astype(np.int32))
    # the darkest stored value (shown white in MONOCHROME1) is now the brightest
    assert out[0][raw == raw.min()].min() == out.max()
    meta = image_metadata(ds)
    assert meta["inverted_monochrome1"] is True
    assert meta["photometric_interpretation"] == "MONOCHROME1"
    assert meta["window_center"] == (2**15 - 1) - 15000  # window follows the inversion
    assert meta["window_width"] == 30000


def test_monochrome1_with_rescale_inverts_in_modality_units() -> None:
    ds = read_dataset(DICOMDIR_TESTS / "77654033/CR1/6154", name="6154")
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    out = decode_frames(ds)
    lo, hi = intercept, slope * (2**12 - 1) + intercept
    expected = lo + hi - (ds.pixel_array * slope + intercept)
    np.testing.assert_allclose(out[0], expected, rtol=1e-5)


def test_palette_color_becomes_8bit_rgb() -> None:
    ds = read_testdata("OBXXXX1A.dcm")
    out = decode_frames(ds)
    assert out.shape == (1, 600, 800, 3) and out.dtype == np.uint8
    expected = (apply_color_lut(ds.pixel_array, ds) >> 8).astype(np.uint8)
    np.testing.assert_array_equal(out[0], expected)
    assert image_metadata(ds)["window_center"] is None


def test_segmented_16bit_palette_becomes_8bit_rgb() -> None:
    out = decode_frames(read_testdata("gdcm-US-ALOKA-16.dcm"))
    assert out.dtype == np.uint8 and out.shape == (1, 480, 640, 3)
    assert out.max() > 200  # scaled from 16-bit entries, not truncated
