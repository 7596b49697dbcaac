"""Decode a data set's frames into modality units (HU for CT), greyscale or RGB.

Order of operations, as in the DICOM grayscale pipeline: decode (YBR → RGB is done by
pydicom), Modality LUT or Rescale Slope/Intercept (per frame for enhanced multi-frame),
then MONOCHROME1 is inverted so that brighter always means a higher value. PALETTE
COLOR images become 8-bit RGB.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

from medlabel.core.errors import InvalidInputError
from medlabel.io.dicom.frames import frame_item
from medlabel.io.dicom.reading import (
    DECODE_ERRORS,
    PARSE_ERRORS,
    check_decoder_available,
    is_encapsulated,
    number_of_frames,
    short_message,
    transfer_syntax,
)

_INT16 = np.iinfo(np.int16)
_INT32 = np.iinfo(np.int32)


def decode_frames(ds: Dataset, *, name: str = "") -> np.ndarray:
    """Decode all frames of an image data set into modality units.

    Parameters
    ----------
    ds
        An image data set (see :func:`~medlabel.io.dicom.is_image`), preferably from
        :func:`~medlabel.io.dicom.read_dataset`.
    name
        Name of the file for messages.

    Returns
    -------
    numpy.ndarray
        ``(frames, rows, columns)`` for greyscale, ``(frames, rows, columns, 3)`` for
        colour (RGB; YBR and PALETTE COLOR are converted). Greyscale values are in
        modality units: the Modality LUT or Rescale Slope/Intercept is applied (per
        frame for enhanced multi-frame); the dtype stays integer (int16, else int32) when
        slope and intercept are integers and the result fits, float32 otherwise, and is
        the stored dtype when there is no rescale. MONOCHROME1 is inverted within the
        stored value range (see :func:`monochrome1_range`). When nothing needed
        converting, the array may be pydicom's cached ``ds.pixel_array``: copy it before
        modifying it in place.

    Raises
    ------
    InvalidInputError
        The pixel data cannot be decoded.
    UnsupportedFormatError
        No decoder for the transfer syntax is installed.
    """
    label = name or "DICOM file"
    syntax = transfer_syntax(ds)
    try:
        if is_encapsulated(ds):
            check_decoder_available(syntax, label)
            arr = ds.pixel_array  # cached by pydicom if read_dataset already decoded it
        else:
            arr = pixel_array(ds)
        frames = number_of_frames(ds)
        photometric = str(ds.PhotometricInterpretation).strip().upper()
        samples = int(ds.SamplesPerPixel)
    except DECODE_ERRORS as exc:
        raise InvalidInputError(
            f"{label}: the pixel data could not be decoded ({short_message(exc)})",
            details={"file": label, "transfer_syntax": str(syntax)},
        ) from exc
    if frames == 1 and arr.ndim == (2 if samples == 1 else 3):
        arr = arr[np.newaxis]
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    try:
        if photometric == "PALETTE COLOR":
            return _palette_to_rgb(arr, ds)
        if samples != 1:
            return arr
        if ds.get("ModalityLUTSequence"):
            out = np.asarray(apply_modality_lut(arr, ds))
        else:
            out = apply_rescale(arr, *rescale_parameters(ds, frames))
        if photometric == "MONOCHROME1":
            out = _invert(out, *monochrome1_range(ds, frames))
    except PARSE_ERRORS as exc:
        raise InvalidInputError(
            f"{label}: invalid rescale or lookup-table attributes ({exc})",
            details={"file": label},
        ) from exc
    return out


def rescale_parameters(ds: Dataset, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame Rescale Slope and Intercept, each of shape ``(frames,)``.

    Reads the Pixel Value Transformation Sequence of enhanced multi-frame images (per
    frame, else shared), else the top-level attributes; defaults are 1 and 0 (a slope of
    0, which would erase the image, is treated as absent).

    Raises
    ------
    ValueError
        A value does not parse as a number.
    """
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    sources = [
        (frame_item(ds, index, "PixelValueTransformationSequence") if enhanced else None) or ds
        for index in range(frames if enhanced else 1)
    ]
    slopes = np.ones(len(sources), dtype=np.float64)
    intercepts = np.zeros(len(sources), dtype=np.float64)
    for index, source in enumerate(sources):
        slope, intercept = source.get("RescaleSlope"), source.get("RescaleIntercept")
        if slope not in (None, "") and float(slope) != 0.0:
            slopes[index] = float(slope)
        if intercept not in (None, ""):
            intercepts[index] = float(intercept)
    if len(sources) != frames:
        slopes = np.full(frames, slopes[0])
        intercepts = np.full(frames, intercepts[0])
    return slopes, intercepts


def apply_rescale(arr: np.ndarray, slopes: np.ndarray, intercepts: np.ndarray) -> np.ndarray:
    """Apply per-frame ``value * slope + intercept`` to ``arr`` of shape ``(frames, ...)``.

    Keeps ``arr`` unchanged when every slope is 1 and intercept 0. With integer input
    and integral slopes and intercepts the result is int16 if it fits, else int32;
    otherwise float32.

    Examples
    --------
    >>> apply_rescale(np.array([[[0, 2000]]], np.uint16), np.array([1.0]), np.array([-1024.0]))
    array([[[-1024,   976]]], dtype=int16)
    """
    if arr.shape[0] != slopes.shape[0] or slopes.shape != intercepts.shape:
        raise ValueError(
            f"need one slope and intercept per frame: array {arr.shape}, slopes "
            f"{slopes.shape}, intercepts {intercepts.shape}"
        )
    if np.all(slopes == 1.0) and np.all(intercepts == 0.0):
        return arr
    shape = (-1,) + (1,) * (arr.ndim - 1)
    s, b = slopes.reshape(shape), intercepts.reshape(shape)
    integral = np.all(slopes == np.round(slopes)) and np.all(intercepts == np.round(intercepts))
    if integral and arr.dtype.kind in "iu" and arr.size:
        lo, hi = float(arr.min()), float(arr.max())
        bounds = np.concatenate(
            [slopes * lo, slopes * hi, slopes * lo + intercepts, slopes * hi + intercepts]
        )
        for info, dtype in ((_INT16, np.int16), (_INT32, np.int32)):
            if bounds.min() >= info.min and bounds.max() <= info.max:
                out: np.ndarray = arr.astype(dtype)
                if np.any(slopes != 1.0):
                    np.multiply(out, s.astype(dtype), out=out)
                np.add(out, b.astype(dtype), out=out)
                return out
    out_f: np.ndarray = arr.astype(np.float32)
    np.multiply(out_f, s.astype(np.float32), out=out_f)
    np.add(out_f, b.astype(np.float32), out=out_f)
    return out_f


def monochrome1_range(ds: Dataset, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The stored value range mapped to modality units, per frame: ``(low, high)``.

    MONOCHROME1 values ``v`` become ``low + high - v``, so the stored minimum (shown
    white) becomes the maximum.
    """
    bits = int(ds.get("BitsStored") or ds.BitsAllocated)
    if int(ds.get("PixelRepresentation") or 0):
        stored = np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1], dtype=np.float64)
    else:
        stored = np.array([0, 2**bits - 1], dtype=np.float64)
    if ds.get("ModalityLUTSequence"):
        mapped = np.asarray(apply_modality_lut(stored.astype(np.int64), ds), dtype=np.float64)
        lo = np.full(frames, mapped.min())
        hi = np.full(frames, mapped.max())
        return lo, hi
    slopes, intercepts = rescale_parameters(ds, frames)
    a = slopes * stored[0] + intercepts
    b = slopes * stored[1] + intercepts
    return np.minimum(a, b), np.maximum(a, b)


def _invert(arr: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    shape = (-1,) + (1,) * (arr.ndim - 1)
    total = (lo + hi).reshape(shape)
    if arr.dtype.kind == "f":
        inverted: np.ndarray = (total.astype(arr.dtype) - arr).astype(arr.dtype)
        return inverted
    wide: np.ndarray = np.clip(total.astype(np.int64) - arr.astype(np.int64), lo.min(), hi.max())
    for dtype in (arr.dtype, np.dtype(np.int16), np.dtype(np.int32)):
        info = np.iinfo(dtype)
        if wide.size == 0 or (wide.min() >= info.min and wide.max() <= info.max):
            return wide.astype(dtype)
    return wide.astype(np.float32)


def _palette_to_rgb(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    try:
        rgb = np.asarray(apply_color_lut(arr, ds))
    except PARSE_ERRORS as exc:
        raise ValueError(f"the PALETTE COLOR lookup table is invalid ({exc})") from exc
    if rgb.dtype != np.uint8:
        if rgb.size and rgb.max() > 255:  # 16-bit palette entries: keep the top 8 bits
            rgb = rgb >> 8
        rgb = rgb.astype(np.uint8)
    return rgb
