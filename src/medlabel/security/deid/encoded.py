"""The de-identifier applied to a file's encoded elements (the import's fast path).

:meth:`Deidentifier.deidentify <medlabel.security.deid.Deidentifier.deidentify>` works on
a pydicom data set, and the file is then written again: reading, converting and writing
cost about four times what the de-identification itself does. :func:`deidentify_file`
gives the same file without a data set: it walks the elements scanned from the file's
bytes (:mod:`medlabel.io.dicom.encoded`), takes the same decisions with the same plan,
keyed values and report, copies what is kept and encodes what changes the way pydicom
writes it. The result is byte for byte ``dicom_file_bytes`` of the data set that
``deidentify`` leaves (a test checks every test file), with the same
:class:`~medlabel.security.deid.DeidResult`.

It declines (returns None) whatever it would not do exactly the same: files the scanner
does not read, the clean options (their identifier matching decodes text), non-ASCII
values it would have to read or write, VR UN on kept attributes, and anything malformed
on which ``deidentify`` would warn and drop an attribute.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from medlabel.io.dicom.encoded import (
    PIXEL_DATA,
    Element,
    Encoded,
    EncodedFile,
    NotScannableError,
    ScannedFile,
    encode,
    encode_sequence,
    encode_text,
    encode_with_pydicom,
    meta_dataset,
    scan_file,
    split_strings,
    value_bytes,
)
from medlabel.io.dicom.writing import encode_simple
from medlabel.security.deid.elements import QUIET_VALIDATION, patient_key, pixel_warnings
from medlabel.security.deid.plan import Op
from medlabel.security.deid.report import DeidResult
from medlabel.security.deid.table import dictionary_vr
from medlabel.security.deid.values import TEXT_VRS, dummy_value, shift_values
from medlabel.security.deid.walk import (
    CLASS_UID_TAGS,
    CLEANED,
    DATE_SHIFTED,
    EMPTIED,
    NORMAL,
    OTHER_VRS,
    PSEUDONYMIZED,
    REMOVED,
    REPLACED,
    RETAINED,
    SCRUB,
    UID_REMAPPED,
    Walk,
)

if TYPE_CHECKING:
    from medlabel.security.deid.deidentifier import Deidentifier

#: attributes read before the walk (patient key, pixel warnings, their character set)
#: and by the writer of the reference path (character set, SOP Class UID)
_KEY_TAGS = frozenset(
    {
        0x00080005,
        0x00080016,
        0x00080060,
        0x00100010,
        0x00100020,
        0x0020000D,
        0x00280301,
        0x00280302,
    }
)
#: VRs whose dummy or pseudonym pydicom writes as plain ASCII text
_TEXT_ENCODED = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"}
)
_NUMBER_FORMATS = {"US": "<H", "SS": "<h", "UL": "<L", "SL": "<l", "UV": "<Q", "SV": "<q",
                   "FL": "<f", "FD": "<d"}  # fmt: skip
_BYTES_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV"})
_VIEW_FROM = 65536


class _DeclinedError(Exception):
    """Something :func:`deidentify_file` does not do exactly as ``deidentify``."""


def deidentify_file(deid: Deidentifier, data: bytes) -> tuple[EncodedFile, DeidResult] | None:
    """De-identify the DICOM file ``data`` without building a pydicom data set.

    Returns
    -------
    (EncodedFile, DeidResult) or None
        The de-identified file (its bytes, and a pydicom view of it) and the report;
        None when the file is left to ``deidentify`` (see the module's description).
    """
    if deid.cleans:
        return None
    try:
        scanned = scan_file(data)
        with QUIET_VALIDATION:
            return _Walker(deid, scanned).run()
    except (NotScannableError, _DeclinedError):
        return None


class _Walker:
    def __init__(self, deid: Deidentifier, scanned: ScannedFile):
        self.deid = deid
        self.plan = deid.plan
        self.data = scanned.data
        self.scanned = scanned
        self.walk: Walk
        self.converted: dict[int, DataElement] = {}
        self.charset: object = None
        self._kept_tag = -1

    def run(self) -> tuple[EncodedFile, DeidResult]:
        data = self.data
        top = self.scanned.elements
        for element in top:
            if element.tag == PIXEL_DATA and (
                element.vr not in ("OB", "OW") or (element.end - element.value) % 2
            ):
                raise _DeclinedError  # dcmwrite pads or refuses it
        view = Dataset({BaseTag(e.tag): _raw(data, e) for e in top if e.tag in _KEY_TAGS})
        view.set_original_encoding(False, True, view._character_set)
        try:
            key = patient_key(view)
            warnings = pixel_warnings(view)
            charset = view.get("SpecificCharacterSet", default_encoding)
            view.get("SOPClassUID")
        except Exception as exc:
            raise _DeclinedError from exc
        deid = self.deid
        walk = Walk(
            pseudonym=deid.pseudonym(key), offset=deid.date_offset_days(key), names=[], ids=[]
        )
        walk.warnings.update(dict.fromkeys(warnings))
        self.walk = walk
        # The reference path reads these elements as values, and its writer then encodes
        # the values again when they are kept: the same here (non-canonical padding, as
        # a UID padded with a space, is not copied).
        self.converted = {
            int(tag): element
            for tag, element in view._dict.items()
            if not isinstance(element, RawDataElement)
        }
        self.charset = charset
        elements = dict(self._walk(top, NORMAL, top=True))
        shell = Dataset()
        shell.file_meta = meta_dataset(self.scanned)
        shell.preamble = data[:128]
        deid.file_meta(shell, walk)
        elements.update(deid.mark_elements())
        actions: dict[str, dict[str, int]] = {}
        for (keyword, action), n in walk.counts.items():
            actions.setdefault(keyword, {})[action] = n
        result = DeidResult(actions, tuple(walk.warnings), walk.pseudonym)
        return EncodedFile(shell.preamble, shell.file_meta, elements), result

    # -- the walk, as Deidentifier._walk ----------------------------------------------

    def _walk(
        self, elements: list[Element], mode: int, *, top: bool = False
    ) -> list[tuple[int, Encoded]]:
        plan, walk = self.plan, self.walk
        out: list[tuple[int, Encoded]] = []
        private = curves = overlays = 0
        for element in elements:
            key = element.tag
            self._kept_tag = -1
            group = key >> 16
            if group & 1:
                private += 1
                continue
            if not key & 0xFFFF:
                continue
            high = group >> 8
            if high == 0x50 or high == 0x60:
                if high == 0x50:
                    curves += 1
                else:
                    overlays += 1
                continue
            vr: str | None = element.vr
            if vr == "UN":
                vr = dictionary_vr(key)
            op = plan.get(key)
            encoded: Encoded | None
            if op is not None:
                encoded = self._apply(element, vr or "UN", Op.REMOVE if vr is None else op)
            elif vr is None or dictionary_vr(key) is None:
                walk.count(key, REMOVED)
                continue
            elif vr in OTHER_VRS or mode:
                encoded = self._other(element, vr, mode)
            else:
                encoded = self._kept(element)
            if top and self._kept_tag == key and key in self.converted:
                encoded = self._encoded_value(self.converted[key])
            if encoded is not None:
                out.append((key, encoded))
        walk.count_groups_removed(private, curves, overlays)
        return out

    def _apply(self, element: Element, vr: str, op: Op) -> Encoded | None:
        walk, key = self.walk, element.tag
        if op is Op.REMOVE:
            walk.count(key, REMOVED)
            return None
        if element.vr == "UN":
            raise _DeclinedError  # pydicom would write it with the dictionary's VR
        if op is Op.EMPTY:
            walk.count(key, EMPTIED)
            return encode(key, vr, b"")
        if op is Op.PSEUDONYM:
            walk.count(key, PSEUDONYMIZED)
            return self._text(key, vr, walk.pseudonym)
        if op is Op.UID:
            return self._remap(element)
        if op is Op.DUMMY:
            if vr == "SQ":
                scrubbed = self._sequence(element, SCRUB)
                walk.count(key, REPLACED)
                return scrubbed
            if vr == "UI":
                return self._remap(element)
            walk.count(key, REPLACED)
            return self._dummy(key, vr)
        if op is Op.DATE:
            if vr in ("DA", "DT"):
                return self._shift(element, vr)
            walk.count(key, RETAINED)
            return self._kept(element)
        if op is Op.CLEAN:
            raise _DeclinedError  # not reached: files are declined up front under clean options
        # KEEP, RECURSE
        encoded: Encoded = self._sequence(element, NORMAL) if vr == "SQ" else self._kept(element)
        walk.count(key, RETAINED if op is Op.KEEP else CLEANED)
        return encoded

    def _other(self, element: Element, vr: str, mode: int) -> Encoded | None:
        walk, key = self.walk, element.tag
        if element.vr == "UN":
            raise _DeclinedError
        if vr == "SQ":
            return self._sequence(element, mode)
        if vr == "UI":
            if key in CLASS_UID_TAGS:
                return self._kept(element)
            return self._remap(element)
        if vr in ("DA", "DT"):
            if self.deid.options.shift_dates:
                return self._shift(element, vr)
            walk.count(key, EMPTIED)
            return encode(key, vr, b"")
        if vr == "PN":
            walk.count(key, EMPTIED)
            return encode(key, vr, b"")
        if mode == SCRUB and vr in TEXT_VRS:
            walk.count(key, REPLACED)
            return self._dummy(key, vr)
        return self._kept(element)

    # -- values -----------------------------------------------------------------------

    def _kept(self, element: Element) -> Encoded:
        """An element as read (pydicom writes a raw element again the same way); large
        ones (Pixel Data) as a view of the source, not a copy."""
        if element.vr in ("UN", "SQ"):
            raise _DeclinedError  # re-encoded by pydicom: not the same bytes
        self._kept_tag = element.tag
        data, start = self.data, element.start
        if element.value - start == 12 and data[start + 6 : start + 8] != b"\0\0":
            return encode(element.tag, element.vr, value_bytes(data, element))
        if element.stop - start > _VIEW_FROM:
            return memoryview(data)[start : element.stop]
        return data[start : element.stop]

    def _encoded_value(self, element: DataElement) -> bytes:
        """A kept element that was read as a value, as the reference writer encodes it."""
        simple = encode_simple(element, False, True)
        return simple if simple is not None else encode_with_pydicom(element, self.charset)

    def _remap(self, element: Element) -> Encoded:
        self.walk.count(element.tag, UID_REMAPPED)
        values = split_strings(value_bytes(self.data, element))
        if not values:
            return self._kept(element)
        remap = self.deid.remap_uid
        return encode_text(element.tag, "UI", [remap(v) for v in values])

    def _shift(self, element: Element, vr: str) -> Encoded:
        walk, key = self.walk, element.tag
        values = split_strings(value_bytes(self.data, element))
        if not values:
            walk.count(key, DATE_SHIFTED)
            return self._kept(element)
        shifted = shift_values(values, vr, walk.offset)
        if shifted is None:
            raise _DeclinedError  # deidentify empties it with a warning: left to it
        walk.count(key, DATE_SHIFTED)
        return encode_text(key, vr, shifted)

    def _text(self, key: int, vr: str, value: str) -> bytes:
        if vr not in _TEXT_ENCODED:
            raise _DeclinedError
        return encode_text(key, vr, value)

    def _dummy(self, key: int, vr: str) -> bytes:
        value = dummy_value(vr)
        if isinstance(value, str):
            return self._text(key, vr, value)
        if vr in _NUMBER_FORMATS:
            return encode(key, vr, struct.pack(_NUMBER_FORMATS[vr], 0))
        if vr == "AT":
            return encode(key, vr, b"\0\0\0\0")
        if vr in _BYTES_VRS:
            return encode(key, vr, b"\0\0")
        raise _DeclinedError

    def _sequence(self, element: Element, mode: int) -> bytes:
        if element.items is None:
            raise _DeclinedError
        items = []
        for item in element.items:
            content = b"".join(encoded for _, encoded in self._walk(item.elements, mode))
            items.append((item.undefined, content))
        return encode_sequence(element.tag, element.undefined, items)


def _raw(data: bytes, element: Element) -> RawDataElement:
    return RawDataElement(
        BaseTag(element.tag),
        element.vr,
        element.end - element.value,
        value_bytes(data, element),
        element.value,
        False,
        True,
    )
