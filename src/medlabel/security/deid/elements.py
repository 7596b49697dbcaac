"""Reading and writing data elements without leaking their values.

Helpers of the de-identifier: values are read from raw bytes where possible (no pydicom
conversion, hence no validation warning quoting the value) and written without validation
(medlabel made them); what can fail on a malformed file raises one of :data:`READ_ERRORS`.
"""

from __future__ import annotations

import struct
import threading
from functools import cache
from typing import Any

from pydicom import config
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

#: What pydicom raises on values it cannot decode (malformed files).
READ_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    AttributeError,
    NotImplementedError,
    EOFError,
    UnicodeError,
    struct.error,
)
#: Modalities whose pixels often carry burned-in text even when BurnedInAnnotation is absent.
_BURNED_IN_MODALITIES = frozenset({"US", "OT", "XC", "ES", "GM", "SC", "DOC"})


class QuietValidation:
    """Turns off pydicom's value validation while datasets are being de-identified.

    pydicom's validation warnings quote the offending value (a malformed patient name,
    say) and are also logged, which would put original identifiers into the logs. The
    setting is process-wide, so concurrent de-identifications share one reference count:
    it is restored when the last one ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = config.WARN

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._saved = config.settings.reading_validation_mode
                config.settings.reading_validation_mode = config.IGNORE
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                config.settings.reading_validation_mode = self._saved


QUIET_VALIDATION = QuietValidation()


@cache
def tag_key(tag: int) -> str:
    """The keyword of ``tag`` for reports, or ``(GGGG,EEEE)`` if it has none."""
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def put(ds: Dataset, tag: int, vr: str, value: Any) -> None:
    """Set an element whose value medlabel made (valid by construction: no validation)."""
    ds[tag] = DataElement(tag, vr, value, validation_mode=config.IGNORE)


def empty(ds: Dataset, tag: int, vr: str) -> None:
    """Set an element to the empty value of its VR (as pydicom reads empty values back)."""
    put(ds, tag, vr, empty_value_for_VR(vr))


def strings(ds: Dataset, tag: int) -> list[str]:
    """The values of a string element (UI, DA, DT) without converting the whole element."""
    raw = ds.get_item(tag, keep_deferred=True)
    value = raw.value if raw is not None else None
    if isinstance(raw, RawDataElement) and isinstance(value, bytes):
        text = value.decode("ascii", "replace")
    else:
        value = ds[tag].value
        if isinstance(value, bytes):
            raise TypeError("undecoded value")
        return as_strings(value)
    return [v for v in (v.strip("\x00 ") for v in text.split("\\")) if v]


def texts(ds: Dataset, tags: tuple[int, ...]) -> list[str]:
    """String forms of the values of ``tags`` in ``ds`` (absent or unreadable ones skipped)."""
    out: list[str] = []
    for tag in tags:
        if tag not in ds._dict:
            continue
        try:
            value: Any = ds[tag].value
        except READ_ERRORS:
            continue
        out.extend(as_strings(value))
    return out


def as_strings(value: Any) -> list[str]:
    """The non-empty string forms of a single or multiple (MultiValue, list) value."""
    if value is None:
        return []
    items = value if isinstance(value, MultiValue | list | tuple) else [value]
    return [text for text in (str(v).strip("\x00 ") for v in items) if text]


def patient_key(ds: Dataset) -> str:
    """What identifies the patient for pseudonym and date offset.

    The Patient ID; without one, the patient's name, then the study (so unrelated studies
    without any patient identity do not share a pseudonym). The fallbacks are prefixed
    with a NUL, which a Patient ID cannot contain, so they never collide with an ID.
    """
    for tag, prefix in ((0x00100020, ""), (0x00100010, "\x00name:")):
        found = texts(ds, (tag,))
        if found and found[0].strip():
            return prefix + found[0].strip()
    study = texts(ds, (0x0020000D,))
    return "\x00study:" + (study[0].strip() if study else "")


def pixel_warnings(ds: Dataset) -> list[str]:
    """Warnings about identity the profile does not remove: burned-in text, faces."""
    warnings: list[str] = []
    burned = texts(ds, (0x00280301,))
    if burned and burned[0].strip().upper() == "YES":
        warnings.append("BurnedInAnnotation is YES: pixels may show identifying text")
    elif not burned:
        modality = texts(ds, (0x00080060,))
        if modality and modality[0].strip().upper() in _BURNED_IN_MODALITIES:
            warnings.append(
                f"BurnedInAnnotation is absent for modality {modality[0].strip().upper()}: "
                "pixels may show identifying text"
            )
    features = texts(ds, (0x00280302,))
    if features and features[0].strip().upper() == "YES":
        warnings.append("RecognizableVisualFeatures is YES: pixels may show a face")
    return warnings
