"""What a DICOM instance is: an image to view, or something else (SEG, RT, SR...).

The SOP Class UID decides; the Modality is the fallback for files without one.
"""

from __future__ import annotations

from enum import StrEnum

from pydicom.dataset import Dataset

#: Keywords of the elements that hold pixels.
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

_SEGMENTATION_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation Storage
}
_RT_IMAGE_CLASS = "1.2.840.10008.5.1.4.1.1.481.1"  # a projection image, viewed as one
_DIRECTORY_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory (DICOMDIR)


class SopKind(StrEnum):
    """Kinds of DICOM instance that an importer handles differently."""

    IMAGE = "image"
    SEGMENTATION = "segmentation"
    RT = "rt"
    STRUCTURED_REPORT = "structured_report"
    PRESENTATION_STATE = "presentation_state"
    DOCUMENT = "document"
    WAVEFORM = "waveform"
    DIRECTORY = "directory"
    OTHER = "other"


# SOP Class UID prefixes; the first match wins.
_PREFIXES: tuple[tuple[str, SopKind], ...] = (
    ("1.2.840.10008.5.1.4.1.1.481.", SopKind.RT),
    ("1.2.840.10008.5.1.4.1.1.88.", SopKind.STRUCTURED_REPORT),
    ("1.2.840.10008.5.1.4.1.1.11.", SopKind.PRESENTATION_STATE),
    ("1.2.840.10008.5.1.4.1.1.104.", SopKind.DOCUMENT),
    ("1.2.840.10008.5.1.4.1.1.9.", SopKind.WAVEFORM),
    ("1.2.840.10008.5.1.4.1.1.66", SopKind.OTHER),  # raw data, registration, fiducials
    ("1.2.840.10008.5.1.4.1.1.67", SopKind.OTHER),  # real world value mapping
)
_MODALITIES = {
    "SEG": SopKind.SEGMENTATION,
    "SR": SopKind.STRUCTURED_REPORT,
    "KO": SopKind.STRUCTURED_REPORT,
    "PR": SopKind.PRESENTATION_STATE,
    "RTSTRUCT": SopKind.RT,
    "RTPLAN": SopKind.RT,
    "RTDOSE": SopKind.RT,
    "RTRECORD": SopKind.RT,
    "DOC": SopKind.DOCUMENT,
    "ECG": SopKind.WAVEFORM,
}


def has_pixels(ds: Dataset) -> bool:
    """True when ``ds`` holds Pixel Data, Float Pixel Data or Double Float Pixel Data."""
    return any(kw in ds for kw in PIXEL_KEYWORDS)


def sop_kind(ds: Dataset) -> SopKind:
    """Classify a data set by its SOP Class UID (or Modality when it has none).

    Parameters
    ----------
    ds
        A parsed DICOM data set.

    Returns
    -------
    SopKind
        ``IMAGE`` for anything with pixels that is not a segmentation, RT object,
        report, presentation state, document or waveform; ``OTHER`` for the rest.

    Examples
    --------
    >>> ds = Dataset()
    >>> ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.66.4"
    >>> sop_kind(ds).value
    'segmentation'
    """
    uid = str(ds.get("SOPClassUID", "") or "")
    if uid in _SEGMENTATION_CLASSES:
        return SopKind.SEGMENTATION
    if uid == _DIRECTORY_CLASS or "DirectoryRecordSequence" in ds:
        return SopKind.DIRECTORY
    if uid == _RT_IMAGE_CLASS:
        return SopKind.IMAGE if has_pixels(ds) else SopKind.OTHER
    for prefix, kind in _PREFIXES:
        if uid.startswith(prefix):
            return kind
    if not uid:
        by_modality = _MODALITIES.get(str(ds.get("Modality", "") or "").upper())
        if by_modality is not None:
            return by_modality
    return SopKind.IMAGE if has_pixels(ds) else SopKind.OTHER


def is_image(ds: Dataset) -> bool:
    """True when ``ds`` is an image to view and annotate (see :func:`sop_kind`).

    Examples
    --------
    >>> is_image(Dataset())
    False
    """
    return sop_kind(ds) is SopKind.IMAGE


def describe_sop_class(ds: Dataset) -> str:
    """A readable name of the SOP class, e.g. ``"Segmentation Storage"``."""
    uid = ds.get("SOPClassUID")
    if uid is None:
        return f"{ds.get('Modality', 'unknown')} object"
    name = getattr(uid, "name", "") or str(uid)
    return str(name)
