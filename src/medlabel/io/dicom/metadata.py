"""A small, de-identification-safe summary of an image for viewers.

Only presentation facts (window, photometric interpretation, units, bit depth...) go in:
no patient, study or institution attributes and no UIDs.
"""

from __future__ import annotations

from typing import Any

import pydicom.uid as uids
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from medlabel.io.dicom.frames import frame_item
from medlabel.io.dicom.kinds import describe_sop_class
from medlabel.io.dicom.pixels import monochrome1_range
from medlabel.io.dicom.reading import PARSE_ERRORS, number_of_frames, transfer_syntax

_LOSSY_SYNTAXES = {uids.JPEGBaseline8Bit, uids.JPEGExtended12Bit, uids.JPEGLSNearLossless}
_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def image_metadata(ds: Dataset, *, frame: int = 0, instances: int = 1) -> dict[str, Any]:
    """Summarise how to display an image built from ``ds`` (its first plane's instance).

    Parameters
    ----------
    ds
        The data set of the image's first plane.
    frame
        That plane's frame index in ``ds`` (for enhanced multi-frame attributes).
    instances
        Number of source instances of the image.

    Returns
    -------
    dict
        JSON-serialisable: ``photometric_interpretation`` (as stored),
        ``inverted_monochrome1``, ``window_center`` / ``window_width`` (in the image's
        modality units, after the MONOCHROME1 inversion; ``None`` when absent),
        ``units`` (``"HU"`` for CT, else the Rescale Type when specified), ``bits_stored``,
        ``number_of_instances``, ``slice_thickness`` (mm), ``sop_class``,
        ``lossy_compressed`` and, for cine, ``frame_time_ms``.
    """
    photometric = _str(ds.get("PhotometricInterpretation"))
    inverted = photometric == "MONOCHROME1"
    center, width = _window(ds, frame)
    if center is not None and inverted:
        try:
            lo, hi = monochrome1_range(ds, number_of_frames(ds))
            center = float(lo[frame] + hi[frame] - center)
        except PARSE_ERRORS:
            center, width = None, None
    measures = frame_item(ds, frame, "PixelMeasuresSequence")
    thickness = _number((measures or ds).get("SliceThickness")) or _number(ds.get("SliceThickness"))
    meta: dict[str, Any] = {
        "photometric_interpretation": photometric,
        "inverted_monochrome1": inverted,
        "window_center": center,
        "window_width": width,
        "units": _units(ds, frame),
        "bits_stored": _int(ds.get("BitsStored")),
        "number_of_instances": instances,
        "slice_thickness": thickness,
        "sop_class": describe_sop_class(ds),
        "lossy_compressed": _str(ds.get("LossyImageCompression")) == "01"
        or transfer_syntax(ds) in _LOSSY_SYNTAXES,
    }
    frame_time = _number(ds.get("FrameTime"))
    if frame_time is not None and number_of_frames(ds) > 1:
        meta["frame_time_ms"] = frame_time
    return meta


def _window(ds: Dataset, frame: int) -> tuple[float | None, float | None]:
    if photometric_is_colour(ds):
        return None, None
    voi = frame_item(ds, frame, "FrameVOILUTSequence")
    for source in (voi, ds):
        if source is None:
            continue
        center = _number(source.get("WindowCenter"))
        width = _number(source.get("WindowWidth"))
        if center is not None and width is not None and width > 0:
            return center, width
    return None, None


def photometric_is_colour(ds: Dataset) -> bool:
    """True for RGB, YBR and PALETTE COLOR images."""
    return (
        int(ds.get("SamplesPerPixel") or 1) != 1
        or _str(ds.get("PhotometricInterpretation")) == "PALETTE COLOR"
    )


def _units(ds: Dataset, frame: int) -> str | None:
    if photometric_is_colour(ds):
        return None
    item = frame_item(ds, frame, "PixelValueTransformationSequence")
    rescale_type = _str((item or ds).get("RescaleType"))
    if rescale_type and rescale_type != "US":
        return rescale_type
    if _str(ds.get("Modality")) == "CT" and str(ds.get("SOPClassUID", "")) == _CT_IMAGE_STORAGE:
        return "HU"
    return None


def _number(value: object) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, list | tuple | MultiValue):
        value = value[0] if len(value) else None
        if value in (None, ""):
            return None
    try:
        return float(value)  # type: ignore[arg-type]
    except PARSE_ERRORS:
        return None


def _int(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _str(value: object) -> str:
    return "" if value is None else str(value).strip().upper()
