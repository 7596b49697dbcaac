"""PNG, JPEG and TIFF files → :class:`~medlabel.imaging.Volume`.

Photographs, screenshots and microscopy images carry no patient geometry, so every raster
becomes a Volume on a nominal 1 mm grid with ``geometry_known=False``:

- shape ``(planes, rows, columns)`` for greyscale, ``(planes, rows, columns, 3)`` for
  colour; one plane, except for a multi-page TIFF stack (one plane per page);
- dtype ``uint8`` or ``uint16`` (PNG, JPEG and most TIFFs); TIFF keeps its integer sample
  type (``int16``, ``int32``, ``uint32``) and floats become ``float32``;
- palette, CMYK and YCbCr images become RGB; alpha channels are dropped (RGBA → RGB,
  LA → L); 1-bit images become ``uint8`` 0/255, so they display like the original;
- the EXIF/TIFF orientation tag (phones, endoscopes, scanners) is applied, so rows and
  columns are as a viewer shows them, and ``metadata["exif_orientation_applied"]`` says so.

TIFF resolution tags are recorded as ``metadata["pixel_size_mm"]`` ``[row, column]`` when
their unit is inch or centimetre, but the geometry stays nominal: DPI values are mostly
print settings (72/96 dpi from editors, scanner dpi of the film, not of the patient) and
nothing in the file says which plane of the body they describe, so trusting them would
present uncalibrated images as measurable. A caller that knows better can rebuild the
affine from the recorded size.

Nothing else from the file is kept: text chunks, EXIF and ImageDescription may carry names.
Pixel counts are checked against ``max_voxels`` before anything is decoded; Pillow's own
decompression-bomb error also becomes :class:`TooLargeError`. Truncated files are rejected:
this relies on Pillow's default ``ImageFile.LOAD_TRUNCATED_IMAGES = False``, which this
module never changes.
"""

from __future__ import annotations

import io
import lzma
import struct
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from medlabel.core.errors import InvalidInputError, TooLargeError, UnsupportedFormatError
from medlabel.imaging.volume import Volume

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8\xff"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_ORIENTATION_TAG = 0x0112
# Errors the decoders raise on damaged data (never our own MedlabelError subclasses).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    lzma.LZMAError,
    IndexError,
    KeyError,
)
# TIFF features tifffile decodes without the optional imagecodecs package; anything else
# (LZW, JPEG, CCITT, CMYK, YCbCr...) is decoded by Pillow's libtiff.
_TIFFFILE_COMPRESSIONS = frozenset({1, 8, 32946, 34925, 32773})  # none, deflate, LZMA, PackBits
_TIFFFILE_PHOTOMETRICS = frozenset({0, 1, 2, 3})  # min-is-white/black, RGB, palette
_PIL_GREY_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


def read_raster(
    source: Path | bytes,
    *,
    name: str | None = None,
    modality: str = "OT",
    max_voxels: int = 1_000_000_000,
) -> Volume:
    """Read a PNG, JPEG or TIFF file (or its bytes) as a Volume on a nominal grid.

    Parameters
    ----------
    source
        Path of the file, or its content.
    name
        Name used in error messages (default: the file name).
    modality
        DICOM modality code to record (``OT``, ``ES`` endoscopy, ``OP`` fundus, ``SM``...).
    max_voxels
        Largest accepted ``pages × rows × columns``, checked before decoding.

    Returns
    -------
    Volume
        Array ``(planes, rows, columns)`` or ``(planes, rows, columns, 3)``; spacing
        ``(1, 1, 1)`` mm, ``geometry_known=False``; ``metadata`` holds ``format``
        (``PNG``/``JPEG``/``TIFF``), ``mode`` (colour model of the file: ``1``, ``L``,
        ``LA``, ``P``, ``RGB``, ``RGBA``, ``CMYK``, ``YCbCr``), ``bits`` (bits per sample
        in the file) and ``exif_orientation_applied``; TIFFs add ``pages`` and, when
        stated, ``pixel_size_mm``.

    Raises
    ------
    InvalidInputError
        The file is damaged or truncated.
    UnsupportedFormatError
        Not PNG/JPEG/TIFF, or a variant that cannot be decoded (12-bit JPEG, animated PNG,
        multi-channel TIFF, TIFF pages of different sizes).
    TooLargeError
        More than ``max_voxels`` pixels.

    Examples
    --------
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("L", (4, 3), 7).save(buf, "PNG")
    >>> v = read_raster(buf.getvalue(), name="x.png")
    >>> v.array.shape, v.array.dtype.name, v.geometry_known, v.metadata["mode"]
    ((1, 3, 4), 'uint8', False, 'L')
    """
    label = name or (source.name if isinstance(source, Path) else "image data")
    with _open(source, label) as fh:
        head = fh.read(132)
        fh.seek(0)
        if head[128:132] == b"DICM":  # checked first: DICOM preambles may mimic TIFF
            raise UnsupportedFormatError(f"{label}: is a DICOM file, not a PNG, JPEG or TIFF")
        if head.startswith(_TIFF_SIGNATURES):
            planes, meta = _read_tiff(fh, label, max_voxels)
        elif head.startswith(_PNG_SIGNATURE) or head.startswith(_JPEG_SOI):
            fmt = "PNG" if head.startswith(_PNG_SIGNATURE) else "JPEG"
            plane, meta = _read_with_pillow(fh, label, fmt, head, max_voxels)
            planes = [plane]
        else:
            raise UnsupportedFormatError(f"{label}: not a PNG, JPEG or TIFF file")
    if len({(p.shape, p.dtype) for p in planes}) > 1:
        raise UnsupportedFormatError(
            f"{label}: TIFF pages differ in orientation, colour or sample type; "
            "save the stack with one pixel format"
        )
    array = np.ascontiguousarray(np.stack(planes))
    return Volume.from_spacing(
        array, spacing=(1.0, 1.0, 1.0), modality=modality, geometry_known=False, metadata=meta
    )


# opening ---------------------------------------------------------------------------------
def _open(source: Path | bytes, label: str) -> AbstractContextManager[BinaryIO]:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    try:
        return open(source, "rb")  # returned to the caller's `with`
    except OSError as exc:
        raise InvalidInputError(f"{label}: cannot open the file ({exc.strerror})") from None


def _check_voxels(label: str, planes: int, rows: int, columns: int, max_voxels: int) -> None:
    if min(planes, rows, columns) < 1:
        raise InvalidInputError(f"{label}: image header has an empty size {rows}×{columns}")
    n = planes * rows * columns
    if n > max_voxels:
        raise TooLargeError(
            f"{label}: image has {planes}×{rows}×{columns} = {n:.3g} pixels, above the limit "
            f"of {max_voxels:.3g} (MEDLABEL_MAX_VOXELS); downscale or crop it"
        )


def _bomb(label: str, exc: Exception) -> TooLargeError:
    return TooLargeError(f"{label}: image is too large to decode safely ({exc})")


# PNG and JPEG (and TIFF encodings tifffile cannot decode) via Pillow ----------------------
def _read_with_pillow(
    fh: BinaryIO, label: str, fmt: str, head: bytes, max_voxels: int
) -> tuple[np.ndarray, dict[str, Any]]:
    try:
        im = Image.open(fh, formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise _bomb(label, exc) from None
    except UnidentifiedImageError:
        raise UnsupportedFormatError(
            f"{label}: this {fmt} cannot be decoded (12-bit and lossless JPEG are not "
            "supported) or its header is damaged; convert it to an 8-bit PNG"
        ) from None
    except _DECODE_ERRORS as exc:
        raise InvalidInputError(f"{label}: not a readable {fmt} file ({exc})") from None
    with im:
        columns, rows = im.size
        _check_voxels(label, 1, rows, columns, max_voxels)
        frames = int(getattr(im, "n_frames", 1))
        if im.format == "PNG" and frames > 1:
            raise UnsupportedFormatError(
                f"{label}: animated PNG ({frames} frames) is not supported; "
                "export the frames as separate PNGs or a multi-page TIFF"
            )
        depth, colour_type = _png_ihdr(head) if fmt == "PNG" else (8, -1)
        # Pillow reduces 16-bit colour PNGs to 8 bits (mode RGB, or RGBA for LA and RGBA).
        reduced = depth == 16 and im.mode == {2: "RGB", 4: "RGBA", 6: "RGBA"}.get(colour_type)
        try:
            if reduced:
                arr = _png16_colour(fh, colour_type)
                mode_name = {2: "RGB", 4: "LA", 6: "RGBA"}[colour_type]
            else:
                im.load()
                arr, mode_name = _pillow_array(im), _colour_model(im.mode)
            orientation = _exif_orientation(im)
        except Image.DecompressionBombError as exc:
            raise _bomb(label, exc) from None
        except _DECODE_ERRORS as exc:
            raise InvalidInputError(
                f"{label}: the image data is truncated or corrupt ({exc})"
            ) from None
    bits = depth if fmt == "PNG" else _pillow_bits(im.mode)
    meta = {
        "format": fmt,
        "mode": mode_name,
        "bits": bits,
        "exif_orientation_applied": orientation != 1,
    }
    return _apply_orientation(_normalise_dtype(arr, label), orientation), meta


def _png_ihdr(head: bytes) -> tuple[int, int]:
    """Bit depth and colour type from the IHDR chunk that must follow the signature."""
    if len(head) < 26 or head[12:16] != b"IHDR":
        return 8, -1
    return head[24], head[25]


def _pillow_array(im: Image.Image) -> np.ndarray:
    """Pixels of a loaded Pillow image as ``(rows, columns)`` or ``(rows, columns, 3)``."""
    mode = im.mode
    if mode == "1":
        return np.asarray(im).astype(np.uint8) * np.uint8(255)
    if mode == "L" or mode in _PIL_GREY_MODES:
        return np.asarray(im)
    if mode == "LA":
        return np.asarray(im)[..., 0]
    if mode == "RGB":
        return np.asarray(im)
    if mode in ("RGBA", "RGBX"):
        return np.asarray(im)[..., :3]
    if mode in ("P", "PA"):  # via RGBA: converting a palette with transparency to RGB warns
        return np.asarray(im.convert("RGBA"))[..., :3]
    return np.asarray(im.convert("RGB"))  # CMYK, YCbCr, LAB, HSV, RGBa, La


def _colour_model(mode: str) -> str:
    return "L" if mode in _PIL_GREY_MODES else mode


def _pillow_bits(mode: str) -> int:
    if mode == "1":
        return 1
    if mode.startswith("I;16"):
        return 16
    return 32 if mode in ("I", "F") else 8


def _png16_colour(fh: BinaryIO, colour_type: int) -> np.ndarray:
    """Decode a 16-bit RGB/LA/RGBA PNG without losing the low byte.

    Pillow has no 16-bit colour mode and keeps only the high byte. Its PNG decoder still
    does the inflating and unfiltering; only the final unpacking is chosen by the tile's
    raw mode. Decoding with a raw mode that picks the high bytes and one that picks the
    low bytes (or, for LA, one that keeps all four bytes of a pixel) recovers the data.
    """
    if colour_type == 4:  # L16 A16 → RGBA bytes (Lhi, Llo, Ahi, Alo)
        rgba = _decode_png_rawmode(fh, "RGBA").astype(np.uint16)
        out: np.ndarray = (rgba[..., 0] << 8) | rgba[..., 1]
        return out
    names = ("RGB;16B", "RGB;16L") if colour_type == 2 else ("RGBA;16B", "RGBA;16L")
    high = _decode_png_rawmode(fh, names[0])[..., :3].astype(np.uint16)
    low = _decode_png_rawmode(fh, names[1])[..., :3].astype(np.uint16)
    out = (high << 8) | low
    return out


def _decode_png_rawmode(fh: BinaryIO, rawmode: str) -> np.ndarray:
    fh.seek(0)
    with Image.open(fh, formats=["PNG"]) as im:
        if len(im.tile) != 1:
            raise ValueError(f"unexpected PNG layout with {len(im.tile)} tiles")
        tile = im.tile[0]
        replace: Callable[..., Any] | None = getattr(tile, "_replace", None)
        im.tile = [replace(args=rawmode) if replace else (*tile[:3], rawmode)]  # type: ignore[list-item]
        im.load()
        return np.asarray(im)


def _exif_orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:  # tolerant when reading: a damaged EXIF block is ignored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


# TIFF via tifffile ------------------------------------------------------------------------
def _read_tiff(
    fh: BinaryIO, label: str, max_voxels: int
) -> tuple[list[np.ndarray], dict[str, Any]]:
    try:
        with tifffile.TiffFile(fh) as tif:
            pages = [
                (i, p)
                for i, p in enumerate(tif.pages)
                if isinstance(p, tifffile.TiffPage) and not p.subfiletype & 0b101
            ]  # skip reduced-resolution copies (thumbnails, pyramids) and transparency masks
            if not pages:
                raise InvalidInputError(f"{label}: TIFF has no image pages")
            sizes = {(p.imagelength, p.imagewidth) for _, p in pages}
            if len(sizes) > 1:
                raise UnsupportedFormatError(
                    f"{label}: TIFF pages have different sizes {sorted(sizes)}; only stacks of "
                    "same-size pages are supported (save each image separately)"
                )
            rows, columns = sizes.pop()
            _check_voxels(label, len(pages), rows, columns, max_voxels)
            first = pages[0][1]
            meta = _tiff_metadata(first, len(pages))
            orientations = [_tiff_orientation(p) for _, p in pages]
            if all(_tifffile_decodes(p) for _, p in pages):
                planes = [_tifffile_plane(p, label) for _, p in pages]
            else:
                planes = _pillow_tiff_planes(fh, pages, label)
    except tifffile.TiffFileError as exc:
        raise InvalidInputError(f"{label}: not a readable TIFF file ({exc})") from None
    except Image.DecompressionBombError as exc:
        raise _bomb(label, exc) from None
    except _DECODE_ERRORS as exc:
        raise InvalidInputError(f"{label}: the TIFF data is truncated or corrupt ({exc})") from None
    meta["exif_orientation_applied"] = any(o != 1 for o in orientations)
    planes = [_apply_orientation(p, o) for p, o in zip(planes, orientations, strict=True)]
    return planes, meta


def _tiff_metadata(page: tifffile.TiffPage, n_pages: int) -> dict[str, Any]:
    photometric, extra = int(page.photometric), _alpha_samples(page)
    if photometric in (0, 1):
        mode = "1" if page.bitspersample == 1 else ("LA" if extra else "L")
    else:
        names = {2: "RGB", 3: "P", 5: "CMYK", 6: "YCbCr", 8: "LAB"}
        mode = names.get(photometric, _enum_name(page.photometric))
        mode = "RGBA" if mode == "RGB" and extra else mode
    meta: dict[str, Any] = {"format": "TIFF", "mode": mode, "bits": int(page.bitspersample)}
    meta["pages"] = n_pages
    size = _tiff_pixel_size_mm(page)
    if size is not None:
        meta["pixel_size_mm"] = size
    return meta


def _tiff_pixel_size_mm(page: tifffile.TiffPage) -> list[float] | None:
    """``[row, column]`` pixel size from YResolution/XResolution in inch or cm units."""
    unit = page.tags.get("ResolutionUnit")
    mm_per_unit = {2: 25.4, 3: 10.0}.get(int(unit.value) if unit is not None else 2)
    x, y = page.tags.get("XResolution"), page.tags.get("YResolution")
    if mm_per_unit is None or x is None or y is None:
        return None
    try:
        per_unit = [float(t.value[0]) / float(t.value[1]) for t in (y, x)]
    except (TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    if not all(np.isfinite(v) and v > 0 for v in per_unit):
        return None
    return [round(mm_per_unit / v, 9) for v in per_unit]


def _tiff_orientation(page: tifffile.TiffPage) -> int:
    tag = page.tags.get(_ORIENTATION_TAG)
    value = tag.value if tag is not None else 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def _tifffile_decodes(page: tifffile.TiffPage) -> bool:
    return (
        int(page.compression) in _TIFFFILE_COMPRESSIONS
        and int(page.predictor) in (1, 2)
        and int(page.photometric) in _TIFFFILE_PHOTOMETRICS
        and page.imagedepth == 1
        and page.bitspersample in (1, 8, 16, 32, 64)
    )


def _tifffile_plane(page: tifffile.TiffPage, label: str) -> np.ndarray:
    arr = page.asarray()
    if "S" in page.axes:
        arr = np.moveaxis(arr, page.axes.index("S"), -1)
    photometric = int(page.photometric)
    colour = page.samplesperpixel - _alpha_samples(page)
    if photometric in (0, 1):
        if colour != 1:
            raise UnsupportedFormatError(
                f"{label}: {page.samplesperpixel}-channel TIFF is not supported; save one "
                "channel per page or as RGB"
            )
        arr = arr[..., 0] if arr.ndim == 3 else arr
        if photometric == 0:  # min-is-white: 0 is white
            if arr.dtype == bool:
                arr = ~arr
            elif arr.dtype.kind == "u":
                arr = ((1 << page.bitspersample) - 1) - arr
        return _normalise_dtype(arr, label)
    if photometric == 2:
        if colour != 3:
            raise UnsupportedFormatError(f"{label}: RGB TIFF with {colour} colour samples")
        return _normalise_dtype(arr[..., :3], label)
    # Palette: a (3, 2**bits) table of 16-bit values, reduced to 8 bits as libtiff does
    # (a table whose values all fit in 8 bits was written as 8-bit by a careless writer).
    cmap = np.asarray(page.colormap)
    if cmap.ndim != 2 or cmap.shape[0] != 3 or arr.ndim != 2 or int(arr.max()) >= cmap.shape[1]:
        raise InvalidInputError(f"{label}: TIFF palette does not match the pixel indices")
    table = cmap if int(cmap.max()) < 256 else cmap >> 8
    return np.ascontiguousarray(table.astype(np.uint8).T[arr.astype(np.intp)])


def _alpha_samples(page: tifffile.TiffPage) -> int:
    """Extra samples that are alpha (associated or not), as opposed to extra channels."""
    return sum(1 for e in page.extrasamples if int(e) in (1, 2))


def _pillow_tiff_planes(
    fh: BinaryIO, pages: list[tuple[int, tifffile.TiffPage]], label: str
) -> list[np.ndarray]:
    for _, page in pages:
        if page.samplesperpixel > 1 and page.bitspersample > 8:
            raise UnsupportedFormatError(
                f"{label}: {page.bitspersample}-bit colour TIFF with "
                f"{_enum_name(page.compression)} compression cannot be decoded without the "
                "'imagecodecs' package; save it uncompressed or with deflate compression"
            )
    fh.seek(0)
    planes = []
    try:
        im = Image.open(fh, formats=["TIFF"])
    except UnidentifiedImageError:
        raise UnsupportedFormatError(
            f"{label}: this TIFF encoding ({_enum_name(pages[0][1].compression)}, "
            f"{_enum_name(pages[0][1].photometric)}) is not supported"
        ) from None
    with im:
        for index, page in pages:
            im.seek(index)
            im.load()
            arr = _pillow_array(im)
            dtype = page.dtype
            if dtype is not None and dtype.kind in "iu" and dtype.itemsize > 1:
                arr = arr.astype(dtype.newbyteorder("="))  # e.g. int16 decoded as Pillow "I"
            planes.append(_normalise_dtype(arr, label))
    return planes


# shared ----------------------------------------------------------------------------------
def _enum_name(value: object) -> str:
    return str(getattr(value, "name", value))


def _normalise_dtype(arr: np.ndarray, label: str) -> np.ndarray:
    if arr.dtype == bool:
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype.kind not in "uif":
        raise UnsupportedFormatError(f"{label}: pixel type {arr.dtype} is not supported")
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr.astype(np.float32), copy=False)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Turn ``(rows, columns[, channels])`` stored pixels into the displayed orientation.

    ``orientation`` is the EXIF/TIFF tag value 1-8 (1: as stored; 6: rotate 90° clockwise
    to display, as phones write portraits).
    """
    ops: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](arr))
