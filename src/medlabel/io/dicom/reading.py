"""Read one DICOM file into a :class:`pydicom.Dataset`, refusing broken input clearly.

Every problem a user can cause (not DICOM, truncated, corrupt pixel data, a transfer
syntax no installed decoder handles, too many voxels) raises a
:class:`~medlabel.core.errors.InvalidInputError` subclass whose message names the file.
"""

from __future__ import annotations

import functools
import io
import math
import struct
from pathlib import Path

import pydicom
import pydicom.uid as uids
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder

from medlabel.core.errors import InvalidInputError, TooLargeError, UnsupportedFormatError
from medlabel.io.dicom.kinds import PIXEL_KEYWORDS, is_image

# What pydicom raises on malformed bytes (it has no single parse error class).
PARSE_ERRORS: tuple[type[Exception], ...] = (
    InvalidDicomError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    NotImplementedError,
    struct.error,
)
# What decoding plugins raise on a codestream they cannot decode.
DECODE_ERRORS: tuple[type[Exception], ...] = (*PARSE_ERRORS, RuntimeError, MemoryError)

_VIDEO_PREFIX = "1.2.840.10008.1.2.4.10"  # MPEG-2, MPEG-4, HEVC (…4.100 to …4.108)
_PACKAGE_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        (uids.JPEGBaseline8Bit, uids.JPEGExtended12Bit, uids.JPEGLossless, uids.JPEGLosslessSV1),
        "python-gdcm",
    ),
    ((uids.JPEGLSLossless, uids.JPEGLSNearLossless), "pyjpegls (or python-gdcm)"),
    (
        (
            uids.JPEG2000Lossless,
            uids.JPEG2000,
            uids.HTJ2KLossless,
            uids.HTJ2KLosslessRPCL,
            uids.HTJ2K,
        ),
        "pylibjpeg-openjpeg",
    ),
    ((uids.RLELossless,), "pylibjpeg-rle"),
)


def prefer_fast_decoder(ds: Dataset, syntax: uids.UID) -> None:
    """8-bit JPEG baseline decodes about twice as fast with Pillow's libjpeg-turbo than
    with GDCM, with identical pixels: use it when Pillow's plugin is available."""
    if syntax == uids.JPEGBaseline8Bit and _pillow_jpeg_available():
        ds.pixel_array_options(decoding_plugin="pillow")


@functools.cache
def _pillow_jpeg_available() -> bool:
    from pydicom.pixels.decoders import JPEGBaseline8BitDecoder

    return "pillow" in JPEGBaseline8BitDecoder.available_plugins


def read_dataset(
    source: Path | str | bytes,
    *,
    name: str,
    check_pixels: bool = True,
    max_voxels: int | None = None,
) -> Dataset:
    """Read a DICOM file completely, including its pixel data, and check it.

    Files with the 128-byte preamble and ``DICM`` marker are read normally. Files
    without it are accepted only when they parse and carry a SOP Class UID and a SOP
    Instance UID (old ACR-NEMA style files, raw data sets). When the transfer syntax is
    missing it is inferred from the encoding pydicom detected.

    Parameters
    ----------
    source
        Path of the file, or its bytes.
    name
        Name of the file for messages (e.g. its path inside an uploaded zip).
    check_pixels
        For images (see :func:`~medlabel.io.dicom.is_image`): decode compressed pixel
        data once to prove it decodes (pydicom keeps the result, so
        :func:`~medlabel.io.dicom.decode_frames` does not decode again). Native pixel
        data is always checked for length, which is cheap.
    max_voxels
        Refuse images with more than this many voxels (rows x columns x frames)
        before decoding anything.

    Returns
    -------
    pydicom.Dataset
        The parsed data set.

    Raises
    ------
    InvalidInputError
        Not a DICOM file, truncated, missing required pixel attributes, or pixel data
        that cannot be decoded.
    UnsupportedFormatError
        The transfer syntax has no decoder installed (the message names the package
        that would add one) or none exists (video).
    TooLargeError
        More voxels than ``max_voxels``.
    OSError
        ``source`` is a path that cannot be read (not a problem of the file's content).
    """
    ds = _parse(source, name)
    check_identity(ds, name)
    _ensure_transfer_syntax(ds, name)
    _check_pixel_data(ds, name, check_pixels, max_voxels)
    return ds


def check_dataset(
    ds: Dataset, *, name: str, check_pixels: bool = True, max_voxels: int | None = None
) -> None:
    """The checks of :func:`read_dataset`, for a data set read another way (with a
    Transfer Syntax UID in its file meta information).

    Raises
    ------
    InvalidInputError, UnsupportedFormatError, TooLargeError
        As :func:`read_dataset`.
    """
    check_identity(ds, name)
    _check_pixel_data(ds, name, check_pixels, max_voxels)


def _check_pixel_data(ds: Dataset, name: str, check_pixels: bool, max_voxels: int | None) -> None:
    if not any(kw in ds for kw in PIXEL_KEYWORDS):
        return
    rows, columns, frames = check_pixel_attributes(ds, name)
    if max_voxels is not None and rows * columns * frames > max_voxels:
        raise TooLargeError(
            f"{name}: the image has {rows * columns * frames:,} voxels ({frames} frames of "
            f"{rows}x{columns}), more than the limit of {max_voxels:,}",
            details={"file": name, "voxels": rows * columns * frames, "limit": max_voxels},
        )
    syntax = transfer_syntax(ds)
    if is_encapsulated(ds):
        check_decoder_available(syntax, name)
        prefer_fast_decoder(ds, syntax)
        if check_pixels and is_image(ds):
            try:
                ds.pixel_array  # noqa: B018  (decodes once; pydicom caches the array)
            except DECODE_ERRORS as exc:
                raise InvalidInputError(
                    f"{name}: the {syntax.name} pixel data could not be decoded "
                    f"({short_message(exc)}); the file is probably corrupt",
                    details={"file": name, "transfer_syntax": str(syntax)},
                ) from exc
    else:
        _check_native_length(ds, name, rows * columns * frames)


def _parse(source: Path | str | bytes, name: str) -> Dataset:
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    ds: Dataset
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        ds = _parse_forced(data, name)
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            raise InvalidInputError(
                f"{name} is not a DICOM file: it has no DICOM preamble ('DICM' marker) and "
                "does not parse as a data set with a SOP Class UID and SOP Instance UID",
                details={"file": name},
            ) from None
    except PARSE_ERRORS as exc:
        raise InvalidInputError(
            f"{name} is not a readable DICOM file ({short_message(exc)}); it may be truncated "
            "or corrupt",
            details={"file": name},
        ) from exc
    return ds


def check_identity(ds: Dataset, name: str) -> None:
    """Raise :class:`InvalidInputError` if ``ds`` has no SOP Class and SOP Instance UID
    (nor is a DICOMDIR)."""
    try:
        has_uids = bool(ds.get("SOPClassUID")) and bool(ds.get("SOPInstanceUID"))
        has_uids = has_uids or "DirectoryRecordSequence" in ds  # a DICOMDIR
    except PARSE_ERRORS:
        has_uids = False
    if not has_uids:
        raise InvalidInputError(
            f"{name}: the DICOM data set has no SOP Class UID or SOP Instance UID; the file "
            "is truncated or not a DICOM object that can be stored",
            details={"file": name},
        )


def _parse_forced(data: bytes, name: str) -> Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data), force=True)
    except PARSE_ERRORS as exc:
        raise InvalidInputError(
            f"{name} is not a DICOM file ({short_message(exc)})", details={"file": name}
        ) from exc


def _ensure_transfer_syntax(ds: Dataset, name: str) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return
    if "PixelData" in ds and ds["PixelData"].is_undefined_length:
        raise InvalidInputError(
            f"{name}: the pixel data is compressed but the file has no Transfer Syntax UID "
            "saying how; the file cannot be decoded",
            details={"file": name},
        )
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if not little:
        syntax = uids.ExplicitVRBigEndian
    else:
        syntax = uids.ImplicitVRLittleEndian if implicit else uids.ExplicitVRLittleEndian
    if meta is None:
        ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax


def transfer_syntax(ds: Dataset) -> uids.UID:
    """The data set's Transfer Syntax UID (Implicit VR Little Endian if unknown)."""
    meta = getattr(ds, "file_meta", None)
    value = meta.get("TransferSyntaxUID") if meta is not None else None
    return uids.UID(str(value)) if value else uids.ImplicitVRLittleEndian


def is_encapsulated(ds: Dataset) -> bool:
    """True when the Pixel Data is compressed (encapsulated in fragments).

    Decided by the transfer syntax when pydicom knows it, else by the element's
    undefined length (how encapsulated data is stored).
    """
    if "PixelData" not in ds:
        return False
    syntax = transfer_syntax(ds)
    if syntax.is_transfer_syntax:
        return bool(syntax.is_encapsulated)
    return bool(ds["PixelData"].is_undefined_length)


def check_decoder_available(syntax: uids.UID, name: str) -> None:
    """Raise :class:`UnsupportedFormatError` if no installed plugin decodes ``syntax``."""
    label = f"{syntax.name} ({syntax})" if syntax.name != str(syntax) else str(syntax)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        decoder = None
    if decoder is not None and decoder.is_available:
        return
    if str(syntax).startswith(_VIDEO_PREFIX):
        hint = (
            "video transfer syntaxes are not supported; export the frames as images, or "
            "transcode the file (e.g. with ffmpeg) to a multi-frame JPEG or uncompressed "
            "DICOM"
        )
    elif decoder is None:
        hint = (
            "no pixel decoder exists for it; convert the file to an uncompressed or JPEG / "
            "JPEG 2000 transfer syntax first (e.g. `gdcmconv --raw` or dcmtk's `dcmconv`)"
        )
    else:
        package = next((pkg for group, pkg in _PACKAGE_HINTS if syntax in group), None)
        missing = "; ".join(decoder.missing_dependencies)
        hint = f"install {package or 'a decoder plugin'} to add it" + (
            f" (pydicom reports: {missing})" if missing else ""
        )
    raise UnsupportedFormatError(
        f"{name}: transfer syntax {label} cannot be decoded: {hint}",
        details={"file": name, "transfer_syntax": str(syntax)},
    )


def check_pixel_attributes(ds: Dataset, name: str) -> tuple[int, int, int]:
    """Validate the Image Pixel attributes and return ``(rows, columns, frames)``.

    Raises
    ------
    InvalidInputError
        An attribute is missing, unparsable or out of range.
    """
    required = ["Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "PhotometricInterpretation"]
    if "PixelData" in ds:
        required += ["BitsStored", "PixelRepresentation"]
    try:
        missing = [kw for kw in required if ds.get(kw) in (None, "")]
        rows = int(ds.get("Rows") or 0)
        columns = int(ds.get("Columns") or 0)
        frames = number_of_frames(ds)
        samples = int(ds.get("SamplesPerPixel") or 0)
    except PARSE_ERRORS as exc:
        raise InvalidInputError(
            f"{name}: an image pixel attribute has an invalid value ({short_message(exc)})",
            details={"file": name},
        ) from exc
    if missing:
        raise InvalidInputError(
            f"{name}: the image is missing required attribute(s) {', '.join(missing)}",
            details={"file": name, "missing": missing},
        )
    if rows < 1 or columns < 1 or frames < 1 or samples not in (1, 3):
        raise InvalidInputError(
            f"{name}: invalid image size (rows {rows}, columns {columns}, frames {frames}, "
            f"samples per pixel {samples})",
            details={"file": name},
        )
    return rows, columns, frames


def number_of_frames(ds: Dataset) -> int:
    """Number of Frames (1 when absent or empty); raises ``ValueError`` if unparsable."""
    value = ds.get("NumberOfFrames")
    return 1 if value in (None, "") else int(value)


def _check_native_length(ds: Dataset, name: str, pixels: int) -> None:
    samples = int(ds.SamplesPerPixel)
    if "PixelData" in ds:
        bits = int(ds.BitsAllocated)
        if str(ds.PhotometricInterpretation) == "YBR_FULL_422":
            values = pixels * 2  # two samples per pixel after chroma sub-sampling
        else:
            values = pixels * samples
        expected = math.ceil(values * bits / 8)
        actual = len(ds.PixelData or b"")
    else:
        keyword = "FloatPixelData" if "FloatPixelData" in ds else "DoubleFloatPixelData"
        expected = pixels * samples * (4 if keyword == "FloatPixelData" else 8)
        actual = len(ds[keyword].value or b"")
    if actual < expected:
        raise InvalidInputError(
            f"{name}: the pixel data is truncated: {actual:,} bytes where the image size needs "
            f"{expected:,}; the file is incomplete or corrupt",
            details={"file": name, "bytes": actual, "expected_bytes": expected},
        )


def short_message(exc: BaseException) -> str:
    """The first lines of an exception message, shortened for a user-facing message."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip().rstrip(":") for line in text.splitlines() if line.strip()]
    short = [line if len(line) <= 160 else line[:157] + "..." for line in lines[:3]]
    return "; ".join(short)
