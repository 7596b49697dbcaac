"""Tests of medlabel.io.raster on real images from pydicom-data and scipy, and on format
variants generated from them with Pillow and tifffile."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image, ImageOps, PngImagePlugin
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames
from pydicom.pixels import apply_color_lut
from pydicom.uid import ImplicitVRLittleEndian

from medlabel.core.errors import InvalidInputError, TooLargeError, UnsupportedFormatError
from medlabel.io.raster import read_raster

ALLOWED_KEYS = {"format", "mode", "bits", "exif_orientation_applied", "pages", "pixel_size_mm"}


# fixtures: real pixel data ----------------------------------------------------------------
@pytest.fixture(scope="module")
def ct_hu() -> np.ndarray:
    """A 512×512 CT slice (int16, HU-like values)."""
    return pydicom.dcmread(get_testdata_file("693_UNCR.dcm")).pixel_array


@pytest.fixture(scope="module")
def ct_u16(ct_hu: np.ndarray) -> np.ndarray:
    return (ct_hu.astype(np.int32) + 2048).astype(np.uint16)


@pytest.fixture(scope="module")
def ct_u8(ct_hu: np.ndarray) -> np.ndarray:
    return np.clip((ct_hu + 160) / 400 * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def us_rgb() -> np.ndarray:
    """A 480×640 RGB ultrasound frame."""
    return pydicom.dcmread(get_testdata_file("US1_UNCR.dcm")).pixel_array


@pytest.fixture(scope="module")
def rgb16() -> np.ndarray:
    """A 100×100 16-bit RGB test pattern."""
    return pydicom.dcmread(get_testdata_file("SC_rgb_16bit.dcm")).pixel_array


@pytest.fixture(scope="module")
def us_jpeg() -> bytes:
    """A real baseline JPEG: the first frame of an ultrasound cine loop."""
    ds = pydicom.dcmread(get_testdata_file("color3d_jpeg_baseline.dcm"))
    return next(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))


@pytest.fixture(scope="module")
def face_palette() -> Image.Image:
    """An 8-bit palette photograph (indices and colour table from a DICOM file)."""
    ds = pydicom.dcmread(get_testdata_file("OT-PAL-8-face.dcm"), force=True)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    lut = apply_color_lut(np.arange(200, dtype=np.uint8), ds) >> 8
    im = Image.fromarray(ds.pixel_array, mode="P")
    im.putpalette(lut.astype(np.uint8).ravel().tolist())
    return im


def _save(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _tiff(array: np.ndarray, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, array, **kwargs)
    return buf.getvalue()


def _png(array: np.ndarray, colour_type: int, *, filters: tuple[int, ...] = (0,)) -> bytes:
    """A minimal 16-bit PNG writer with per-row filters 0-4 (cycled), independent of Pillow."""
    rows, columns = array.shape[:2]
    raw = np.ascontiguousarray(array, dtype=">u2").view(np.uint8).reshape(rows, -1)
    bpp = raw.shape[1] // columns
    prev = np.zeros(raw.shape[1], dtype=np.int32)
    out = b""
    for r in range(rows):
        cur = raw[r].astype(np.int32)
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        f = filters[r % len(filters)]
        if f == 4:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        else:
            pred = [0 * cur, left, prev, (left + prev) // 2][f]
        out += bytes([f]) + ((cur - pred) % 256).astype(np.uint8).tobytes()
        prev = cur

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", columns, rows, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(out))
        + chunk(b"IEND", b"")
    )


def _png_header_only(columns: int, rows: int) -> bytes:
    """A PNG header claiming a size, followed by four bytes of (undecodable) image data."""
    out = b"\x89PNG\r\n\x1a\n"
    for kind, data in [
        (b"IHDR", struct.pack(">IIBBBBB", columns, rows, 8, 0, 0, 0, 0)),
        (b"IDAT", b"\x00\x01\x02\x03"),
    ]:
        out += (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )
    return out


# edge cases -----------------------------------------------------------------------------
@pytest.mark.parametrize("data", [b"", b"hello", b"\x00" * 200])
def test_not_an_image_is_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedFormatError, match=r"notes\.txt: not a PNG, JPEG or TIFF"):
        read_raster(data, name="notes.txt")


def test_dicom_file_is_unsupported() -> None:
    with pytest.raises(UnsupportedFormatError, match=r"CT_small\.dcm"):
        read_raster(Path(get_testdata_file("CT_small.dcm")))


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"gone\.png"):
        read_raster(tmp_path / "gone.png")


def test_png_cut_in_half_is_rejected_not_padded(tmp_path: Path, ct_u8: np.ndarray) -> None:
    data = _save(Image.fromarray(ct_u8), "PNG")
    path = tmp_path / "ct.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match=r"ct\.png: .*truncated"):
        read_raster(path)


def test_truncated_jpeg_is_rejected(us_jpeg: bytes) -> None:
    with pytest.raises(InvalidInputError, match=r"frame\.jpg"):
        read_raster(us_jpeg[: len(us_jpeg) // 2], name="frame.jpg")


def test_png_with_damaged_header_is_invalid(ct_u8: np.ndarray) -> None:
    data = bytearray(_save(Image.fromarray(ct_u8), "PNG"))
    data[29] ^= 0xFF  # inside the IHDR CRC
    with pytest.raises(InvalidInputError, match=r"bad\.png"):
        read_raster(bytes(data), name="bad.png")


def test_size_is_checked_before_decoding() -> None:
    # A header claiming 5000×5000 pixels followed by no image data at all: decoding would
    # fail, so TooLargeError proves the limit is applied first.
    with pytest.raises(TooLargeError, match=r"huge\.png: .*MEDLABEL_MAX_VOXELS"):
        read_raster(_png_header_only(5000, 5000), name="huge.png", max_voxels=1_000_000)


def test_pillow_decompression_bomb_becomes_too_large() -> None:
    # Above twice Pillow's MAX_IMAGE_PIXELS, Pillow refuses in Image.open.
    with pytest.raises(TooLargeError, match=r"bomb\.png: .*too large"):
        read_raster(_png_header_only(30000, 30000), name="bomb.png", max_voxels=10**10)


def test_limit_counts_exactly(ct_u8: np.ndarray) -> None:
    data = _save(Image.fromarray(ct_u8), "PNG")
    assert read_raster(data, name="x", max_voxels=512 * 512).array.shape == (1, 512, 512)
    with pytest.raises(TooLargeError):
        read_raster(data, name="x", max_voxels=512 * 512 - 1)


def test_12_bit_jpeg_is_unsupported() -> None:
    ds = pydicom.dcmread(get_testdata_file("JPEG-lossy.dcm"))
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    with pytest.raises(UnsupportedFormatError, match=r"nm\.jpg: .*12-bit"):
        read_raster(frame, name="nm.jpg")


def test_animated_png_is_unsupported(ct_u8: np.ndarray) -> None:
    frames = [Image.fromarray(ct_u8), Image.fromarray(255 - ct_u8)]
    data = _save(frames[0], "PNG", save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedFormatError, match="animated PNG"):
        read_raster(data, name="cine.png")


def test_tiff_pages_of_different_sizes_are_unsupported(ct_u8: np.ndarray) -> None:
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        tif.write(ct_u8)
        tif.write(ct_u8[:100])
    with pytest.raises(UnsupportedFormatError, match=r"slides\.tif: .*different sizes"):
        read_raster(buf.getvalue(), name="slides.tif")


def test_tiff_pages_of_different_types_are_unsupported(ct_u8: np.ndarray) -> None:
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        tif.write(ct_u8)
        tif.write(ct_u8.astype(np.uint16))
    with pytest.raises(UnsupportedFormatError, match="sample type"):
        read_raster(buf.getvalue(), name="mixed.tif")


def test_tiff_stack_limit_counts_all_pages(ct_u8: np.ndarray) -> None:
    data = _tiff(np.stack([ct_u8] * 3), photometric="minisblack")
    with pytest.raises(TooLargeError, match=r"3×512×512"):
        read_raster(data, name="stack.tif", max_voxels=2 * 512 * 512)


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_truncated_tiff_is_rejected(ct_u8: np.ndarray, compression: str | None) -> None:
    data = _save(Image.fromarray(ct_u8), "TIFF", compression=compression)
    with pytest.raises(InvalidInputError, match=r"cut\.tif"):
        read_raster(data[: len(data) // 2], name="cut.tif")


def test_multichannel_tiff_is_unsupported(ct_u8: np.ndarray) -> None:
    two = np.stack([ct_u8, 255 - ct_u8], axis=-1)
    data = _tiff(two, photometric="minisblack", planarconfig="contig")
    with pytest.raises(UnsupportedFormatError, match="2-channel"):
        read_raster(data, name="fluo.tif")


# PNG ------------------------------------------------------------------------------------
def test_grey_png_from_path(tmp_path: Path, ct_u8: np.ndarray) -> None:
    path = tmp_path / "ct.png"
    path.write_bytes(_save(Image.fromarray(ct_u8), "PNG"))
    v = read_raster(path, modality="CT")
    assert v.array.shape == (1, 512, 512) and v.array.dtype == np.uint8
    np.testing.assert_array_equal(v.array[0], ct_u8)
    assert not v.geometry_known and v.spacing == (1.0, 1.0, 1.0) and v.modality == "CT"
    assert v.metadata == {
        "format": "PNG",
        "mode": "L",
        "bits": 8,
        "exif_orientation_applied": False,
    }


def test_16_bit_grey_png(ct_u16: np.ndarray) -> None:
    v = read_raster(_save(Image.fromarray(ct_u16), "PNG"), name="ct16.png")
    assert v.array.dtype == np.uint16 and v.array.dtype.isnative
    np.testing.assert_array_equal(v.array[0], ct_u16)
    assert (v.metadata["mode"], v.metadata["bits"]) == ("L", 16)


def test_rgb_png(us_rgb: np.ndarray) -> None:
    v = read_raster(_save(Image.fromarray(us_rgb), "PNG"), name="us.png")
    assert v.array.shape == (1, 480, 640, 3) and v.channels == 3
    np.testing.assert_array_equal(v.array[0], us_rgb)


@pytest.mark.parametrize("filters", [(0,), (1,), (2,), (3,), (4,), (0, 1, 2, 3, 4)])
@pytest.mark.parametrize(("colour_type", "mode"), [(2, "RGB"), (6, "RGBA")])
def test_16_bit_colour_png_keeps_all_bits(
    rgb16: np.ndarray, colour_type: int, mode: str, filters: tuple[int, ...]
) -> None:
    pixels = rgb16 if colour_type == 2 else np.dstack([rgb16, rgb16[..., :1] ^ 0x5A5A])
    v = read_raster(_png(pixels, colour_type, filters=filters), name="rgb16.png")
    assert v.array.dtype == np.uint16 and v.array.shape == (1, 100, 100, 3)
    np.testing.assert_array_equal(v.array[0], rgb16)
    assert (v.metadata["mode"], v.metadata["bits"]) == (mode, 16)


@pytest.mark.parametrize("filters", [(0,), (4,), (1, 3)])
def test_16_bit_grey_alpha_png_becomes_grey(ct_u16: np.ndarray, filters: tuple[int, ...]) -> None:
    pixels = np.dstack([ct_u16[:64, :80], np.full((64, 80), 0x1234, np.uint16)])
    v = read_raster(_png(pixels, 4, filters=filters), name="la16.png")
    assert v.array.shape == (1, 64, 80) and v.array.dtype == np.uint16
    np.testing.assert_array_equal(v.array[0], ct_u16[:64, :80])


def test_palette_png_becomes_rgb(face_palette: Image.Image) -> None:
    v = read_raster(_save(face_palette, "PNG"), name="face.png")
    expected = np.asarray(face_palette.convert("RGB"))
    assert v.array.shape == (1, 480, 640, 3) and v.array.dtype == np.uint8
    np.testing.assert_array_equal(v.array[0], expected)
    assert v.metadata["mode"] == "P"


def test_alpha_is_dropped(us_rgb: np.ndarray, ct_u8: np.ndarray) -> None:
    rgba = np.dstack([us_rgb, np.full(us_rgb.shape[:2], 7, np.uint8)])
    v = read_raster(_save(Image.fromarray(rgba, mode="RGBA"), "PNG"), name="a.png")
    np.testing.assert_array_equal(v.array[0], us_rgb)
    la = Image.fromarray(np.dstack([ct_u8, 255 - ct_u8]), mode="LA")
    v = read_raster(_save(la, "PNG"), name="la.png")
    assert v.array.shape == (1, 512, 512)
    np.testing.assert_array_equal(v.array[0], ct_u8)
    assert v.metadata["mode"] == "LA"


def test_one_bit_png_becomes_0_255(ct_u8: np.ndarray) -> None:
    bits = ct_u8 > 100
    v = read_raster(_save(Image.fromarray(bits), "PNG"), name="bw.png")
    assert v.array.dtype == np.uint8 and set(np.unique(v.array)) == {0, 255}
    np.testing.assert_array_equal(v.array[0], np.where(bits, 255, 0))
    assert (v.metadata["mode"], v.metadata["bits"]) == ("1", 1)


def test_real_png_keeps_no_text_chunks() -> None:
    scipy = pytest.importorskip("scipy")
    path = Path(scipy.__file__).parent / "ndimage" / "tests" / "dots.png"
    if not path.exists():
        pytest.skip("scipy was installed without its test images")
    assert "Comment" in Image.open(path).info  # the file does carry a text chunk
    v = read_raster(path)
    assert v.array.shape == (1, 300, 420, 3)
    assert v.metadata == {
        "format": "PNG",
        "mode": "RGB",
        "bits": 8,
        "exif_orientation_applied": False,
    }


def test_identifying_text_and_exif_never_reach_metadata(ct_u8: np.ndarray) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Doe")
    exif = Image.Exif()
    exif[0x013B] = "Jane Doe"  # Artist
    png = _save(Image.fromarray(ct_u8), "PNG", pnginfo=info, exif=exif)
    jpeg = _save(Image.fromarray(ct_u8), "JPEG", exif=exif)
    tif = _tiff(ct_u8, description="Patient: Jane Doe")
    for data in (png, jpeg, tif):
        meta = read_raster(data, name="x").metadata
        assert set(meta) <= ALLOWED_KEYS
        assert "Jane" not in json.dumps(meta)


# EXIF orientation -----------------------------------------------------------------------
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(us_rgb: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    im = Image.fromarray(us_rgb[:, :600])  # not square, so transposes show
    data = _save(im, "PNG", exif=exif)
    v = read_raster(data, name="photo.png")
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    np.testing.assert_array_equal(v.array[0], expected)
    assert v.metadata["exif_orientation_applied"] is (orientation != 1)


def test_phone_portrait_jpeg_is_rotated(us_jpeg: bytes) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    app1 = exif.tobytes()
    data = us_jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + us_jpeg[2:]
    v = read_raster(data, name="endo.jpg")
    stored = np.asarray(Image.open(io.BytesIO(us_jpeg)))
    assert v.array.shape == (1, 640, 480, 3)
    np.testing.assert_array_equal(v.array[0], np.rot90(stored, -1))
    assert v.metadata["exif_orientation_applied"] is True


# JPEG -----------------------------------------------------------------------------------
def test_real_jpeg(us_jpeg: bytes) -> None:
    v = read_raster(us_jpeg, name="us.jpg", modality="US")
    assert v.array.shape == (1, 480, 640, 3) and v.array.dtype == np.uint8
    np.testing.assert_array_equal(v.array[0], np.asarray(Image.open(io.BytesIO(us_jpeg))))
    assert v.metadata == {
        "format": "JPEG",
        "mode": "RGB",
        "bits": 8,
        "exif_orientation_applied": False,
    }


def test_grey_and_cmyk_jpeg(ct_u8: np.ndarray, us_rgb: np.ndarray) -> None:
    v = read_raster(_save(Image.fromarray(ct_u8), "JPEG", quality=95), name="g.jpg")
    assert v.array.shape == (1, 512, 512)
    assert np.abs(v.array[0].astype(int) - ct_u8).mean() < 3
    cmyk = Image.fromarray(us_rgb).convert("CMYK")
    v = read_raster(_save(cmyk, "JPEG", quality=95), name="print.jpg")
    assert v.array.shape == (1, 480, 640, 3) and v.metadata["mode"] == "CMYK"
    assert np.abs(v.array[0].astype(int) - np.asarray(cmyk.convert("RGB"))).mean() < 3


# TIFF -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.uint8, np.uint8),
        (np.uint16, np.uint16),
        (np.int16, np.int16),
        (np.float32, np.float32),
        (np.float64, np.float32),
        (">u2", np.uint16),
    ],
)
def test_tiff_sample_types(ct_hu: np.ndarray, dtype: str, expected: type) -> None:
    src = np.clip(ct_hu, 0, 255) if np.dtype(dtype) == np.uint8 else np.abs(ct_hu)
    if np.dtype(dtype).kind == "f":
        src = ct_hu / 1000.0
    data = _tiff(src.astype(dtype))
    v = read_raster(data, name="x.tif")
    assert v.array.dtype == expected and v.array.dtype.isnative
    np.testing.assert_allclose(v.array[0], src.astype(dtype).astype(expected))


def test_tiff_stack_becomes_planes(ct_u16: np.ndarray) -> None:
    stack = np.stack([ct_u16, ct_u16 // 2, ct_u16 // 3])
    v = read_raster(_tiff(stack, photometric="minisblack"), name="stack.tif")
    assert v.array.shape == (3, 512, 512) and v.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(v.array, stack)
    assert v.metadata["pages"] == 3 and not v.geometry_known


def test_16_bit_rgb_tiff(rgb16: np.ndarray) -> None:
    v = read_raster(_tiff(rgb16, photometric="rgb"), name="rgb16.tif")
    assert v.array.dtype == np.uint16
    np.testing.assert_array_equal(v.array[0], rgb16)
    separate = _tiff(np.moveaxis(rgb16, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_raster(separate, name="p.tif").array[0], rgb16)


def test_tiff_thumbnail_page_is_skipped(ct_u8: np.ndarray) -> None:
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        tif.write(ct_u8)
        tif.write(ct_u8[::8, ::8], subfiletype=1)  # reduced-resolution copy
    v = read_raster(buf.getvalue(), name="t.tif")
    assert v.array.shape == (1, 512, 512) and v.metadata["pages"] == 1


def test_tiff_grey_alpha_and_min_is_white(ct_u8: np.ndarray) -> None:
    la = np.dstack([ct_u8, 255 - ct_u8])
    data = _tiff(la, photometric="minisblack", extrasamples=["unassalpha"])
    np.testing.assert_array_equal(read_raster(data, name="la.tif").array[0], ct_u8)
    bits = ct_u8 > 100
    data = _tiff(bits, photometric="miniswhite")
    v = read_raster(data, name="fax.tif")
    pillow_view = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    np.testing.assert_array_equal(v.array[0], pillow_view)
    np.testing.assert_array_equal(v.array[0], np.where(bits, 0, 255))


@pytest.mark.parametrize(
    ("mode", "compression"),
    [("P", None), ("CMYK", None), ("L", "tiff_lzw"), ("RGB", "tiff_lzw"), ("RGB", "jpeg")],
)
def test_tiff_encodings_decoded_by_pillow(
    face_palette: Image.Image, mode: str, compression: str | None
) -> None:
    im = face_palette.convert(mode) if mode != "P" else face_palette
    data = _save(im, "TIFF", compression=compression)
    v = read_raster(data, name="x.tif")
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("L" if mode == "L" else "RGB"))
    np.testing.assert_array_equal(v.array[0], expected)


def test_lzw_16_bit_grey_tiff(ct_u16: np.ndarray) -> None:
    data = _save(Image.fromarray(ct_u16), "TIFF", compression="tiff_lzw")
    v = read_raster(data, name="lzw16.tif")
    assert v.array.dtype == np.uint16
    np.testing.assert_array_equal(v.array[0], ct_u16)


def test_tiff_orientation_tag_is_applied(ct_u8: np.ndarray) -> None:
    data = _tiff(ct_u8[:, :300], extratags=[(274, "H", 1, 8, False)])  # rotate 90° ccw
    v = read_raster(data, name="o.tif")
    assert v.array.shape == (1, 300, 512)
    np.testing.assert_array_equal(v.array[0], np.rot90(ct_u8[:, :300], 1))
    assert v.metadata["exif_orientation_applied"] is True


@pytest.mark.parametrize(
    ("unit", "resolution", "expected"),
    [
        ("CENTIMETER", (100, 50), [0.2, 0.1]),  # x = 100 px/cm → 0.1 mm columns
        ("INCH", (254, 254), [0.1, 0.1]),
        ("NONE", (100, 100), None),
    ],
)
def test_tiff_resolution_is_recorded_not_trusted(
    ct_u8: np.ndarray, unit: str, resolution: tuple[int, int], expected: list[float] | None
) -> None:
    data = _tiff(ct_u8, resolution=resolution, resolutionunit=unit)
    v = read_raster(data, name="r.tif")
    assert v.metadata.get("pixel_size_mm") == expected
    assert v.spacing == (1.0, 1.0, 1.0) and not v.geometry_known


def test_nan_in_float_tiff_becomes_zero() -> None:
    arr = np.array([[1.5, np.nan], [np.inf, -2.0]], dtype=np.float32)
    v = read_raster(_tiff(arr), name="f.tif")
    assert np.all(np.isfinite(v.array)) and v.array[0, 0, 0] == 1.5


def test_16_bit_colour_tiff_needing_imagecodecs_is_refused_not_reduced(rgb16: np.ndarray) -> None:
    # An LZW-compressed 16-bit RGB TIFF: tifffile needs imagecodecs for LZW and Pillow would
    # keep only 8 bits, so the reader must refuse. (The compression tag is patched: the
    # image data are never reached.)
    data = bytearray(_tiff(rgb16, photometric="rgb"))
    tag = struct.pack("<HHIH", 259, 3, 1, 1)  # Compression = 1 (none)
    assert data.count(tag) == 1
    data[data.index(tag) : data.index(tag) + len(tag)] = struct.pack("<HHIH", 259, 3, 1, 5)
    with pytest.raises(UnsupportedFormatError, match=r"16-bit colour TIFF with LZW"):
        read_raster(bytes(data), name="lzw.tif")
