"""Write a data set as a DICOM file (Part 10), copying what did not change from its source.

pydicom's ``dcmwrite`` encodes every element again, which costs more than reading the
file did. :func:`dicom_file_bytes` gives the same bytes faster when the data set was
read from bytes that are still at hand and keeps their encoding: elements that are still
as read (pydicom's raw elements, and Pixel Data) are copied from those bytes, the others
(changed, added or decoded ones) are encoded here when they are plain ASCII text or
integers (most of what de-identification changes), else by pydicom. The file meta
information is checked and completed by pydicom (``validate_file_meta``) and encoded
here the same way.
"""

from __future__ import annotations

import copy
import io
import struct
from struct import Struct

import pydicom
from pydicom.charset import default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

_PIXEL_DATA = 0x7FE00010
_GROUP_LENGTH = 0x00020000
_UNDEFINED_LENGTH = 0xFFFFFFFF
#: tag + length (implicit VR); tag + VR + 16-bit length; tag + VR + 2 reserved + 32-bit length
_HEADERS = {
    little: (
        Struct(f"{'><'[little]}HHL").pack,
        Struct(f"{'><'[little]}HH2sH").pack,
        Struct(f"{'><'[little]}HH2s2xL").pack,
    )
    for little in (True, False)
}
_ITEM = {True: b"\xfe\xff\x00\xe0", False: b"\xff\xfe\xe0\x00"}
#: text VRs whose ASCII values pydicom writes as they are (joined by backslashes, padded
#: to an even length: UI with a NUL, the others with a space)
_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "TM", "UI", "SH", "LO", "ST", "LT", "UC", "UT", "UR"}
)
#: integer VRs and their struct codes
_INT_VRS = {"US": "H", "SS": "h", "UL": "L", "SL": "l"}
_SEQUENCE_DELIMITER = {True: b"\xfe\xff\xdd\xe0\0\0\0\0", False: b"\xff\xfe\xe0\xdd\0\0\0\0"}


def dicom_file_bytes(ds: Dataset, source: bytes | None = None) -> bytes:
    """The data set as a DICOM file (Part 10) in its own transfer syntax: byte for byte
    what ``pydicom.dcmwrite(..., enforce_file_format=True)`` writes.

    Parameters
    ----------
    ds
        The data set; like ``dcmwrite``, this sets its Pixel Data's undefined-length
        flag from the transfer syntax.
    source
        The bytes ``ds`` was read from (with ``pydicom.dcmread``), if at hand: elements
        still as read are then copied from them instead of being encoded again.

    Returns
    -------
    bytes
        The file.

    Raises
    ------
    ValueError, TypeError, ...
        Whatever ``dcmwrite`` raises for a data set it cannot write.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    >>> ds = pydicom.dcmread(io.BytesIO(data))
    >>> ds.PatientName = "Anonymous"
    >>> dicom_file_bytes(ds, data) == dicom_file_bytes(ds)
    True
    """
    syntax = _copyable_syntax(ds) if source is not None else None
    if source is not None and syntax is not None:
        try:
            return _copy_and_encode(ds, source, syntax)
        except Exception:  # noqa: BLE001 - dcmwrite, the reference, raises its own error
            pass
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _copyable_syntax(ds: Dataset) -> UID | None:
    """The transfer syntax, when ``dcmwrite`` would write ``ds`` in the encoding it was
    read with (so its raw elements as they are), else None."""
    meta = getattr(ds, "file_meta", None)
    value = meta.get("TransferSyntaxUID") if meta is not None else None
    if not value:
        return None
    syntax = UID(str(value))
    if not syntax.is_transfer_syntax or syntax.is_private or syntax.is_deflated:
        return None
    if (syntax.is_implicit_VR, syntax.is_little_endian) != ds.original_encoding:
        return None
    if ds.original_character_set != ds._character_set:  # as pydicom's write_dataset checks
        return None
    if any(tag >> 16 in (0, 2) for tag in ds._dict):  # dcmwrite refuses these
        return None
    return syntax


def _copy_and_encode(ds: Dataset, source: bytes, syntax: UID) -> bytes:
    little = bool(syntax.is_little_endian)
    implicit = bool(syntax.is_implicit_VR)
    parts: list[bytes | memoryview] = [file_header(ds)]
    if "PixelData" in ds:  # as dcmwrite does
        ds["PixelData"].is_undefined_length = syntax.is_compressed
    charset = ds.get("SpecificCharacterSet", default_encoding)
    view = memoryview(source)
    start = end = -1  # the run of source bytes not added yet
    encoded: DicomBytesIO | None = None  # the run of elements encoded by pydicom
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:  # group lengths: dcmwrite skips them
            continue
        elem = ds.get_item(tag)
        span = _source_span(elem, source, implicit, little)
        if span is None:
            if end > start:
                parts.append(view[start:end])
                start = end = -1
            simple = encode_simple(elem, implicit, little)
            if simple is not None:
                if encoded is not None:
                    parts.append(encoded.getvalue())
                    encoded = None
                parts.append(simple)
                continue
            if encoded is None:
                encoded = DicomBytesIO()
                encoded.is_implicit_VR, encoded.is_little_endian = implicit, little
            write_data_element(encoded, elem, charset)
            continue
        if encoded is not None:
            parts.append(encoded.getvalue())
            encoded = None
        if span[0] != end:
            if end > start:
                parts.append(view[start:end])
            start = span[0]
        end = span[1]
    if encoded is not None:
        parts.append(encoded.getvalue())
    if end > start:
        parts.append(view[start:end])
    return b"".join(parts)


def file_header(ds: Dataset) -> bytes:
    """Preamble, ``DICM`` and the file meta information, as ``dcmwrite`` writes them
    (on a copy of the file meta, which ``dcmwrite`` also leaves unchanged)."""
    meta = FileMetaDataset()
    for elem in ds.file_meta.elements():
        meta[elem.tag] = elem if isinstance(elem, RawDataElement) else copy.copy(elem)
    for meta_keyword, keyword in (
        ("MediaStorageSOPClassUID", "SOPClassUID"),
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
    ):
        current, value = meta.get(meta_keyword), ds.get(keyword)
        if current is None or (value and value != current):
            setattr(meta, meta_keyword, value)
    preamble = getattr(ds, "preamble", None) or b"\0" * 128
    if len(preamble) != 128:
        raise ValueError("the preamble must be 128 bytes long")  # dcmwrite says more
    return bytes(preamble) + b"DICM" + _file_meta_bytes(meta)


def _file_meta_bytes(meta: FileMetaDataset) -> bytes:
    """``write_file_meta_info(..., enforce_standard=True)``'s bytes: its checks and the
    elements it adds (by pydicom), the elements encoded here when they are raw, plain
    text or bytes, else by pydicom."""
    validate_file_meta(meta, enforce_standard=True)  # raises, or adds what is missing
    parts = []
    for tag in sorted(meta.keys()):
        if tag == _GROUP_LENGTH:
            continue
        elem = meta.get_item(tag)
        encoded = _encode_meta_element(elem)
        if encoded is None:  # anything unusual: pydicom writes the whole group
            fp = DicomBytesIO()
            fp.is_implicit_VR, fp.is_little_endian = False, True
            write_file_meta_info(fp, meta, enforce_standard=True)
            return fp.getvalue()
        parts.append(encoded)
    rest = b"".join(parts)
    return _HEADERS[True][1](2, 0, b"UL", 4) + struct.pack("<L", len(rest)) + rest


def _encode_meta_element(elem: DataElement | RawDataElement) -> bytes | None:
    """A file meta element (explicit VR little endian) as pydicom writes it, or None."""
    if isinstance(elem, RawDataElement):
        vr, value = elem.VR, elem.value
        if vr is None or len(vr) != 2 or not isinstance(value, bytes) or len(value) % 2:
            return None
        head = _header(int(elem.tag), vr, len(value), False, True)
        return None if head is None else head + value
    if elem.VR == "OB" and isinstance(elem.value, bytes) and not elem.is_buffered:
        value = elem.value + (b"\0" if len(elem.value) % 2 else b"")
        head = _header(int(elem.tag), "OB", len(value), False, True)
        return None if head is None else head + value
    return encode_simple(elem, False, True)


def _source_span(
    elem: DataElement | RawDataElement, source: bytes, implicit: bool, little: bool
) -> tuple[int, int] | None:
    """Where in ``source`` the bytes ``write_data_element`` would write for ``elem`` are,
    or None if they are not there (changed, decoded or re-encoded elements)."""
    offset: int | None
    if isinstance(elem, RawDataElement):
        value, vr, offset = elem.value, elem.VR, elem.value_tell
        undefined = elem.length == _UNDEFINED_LENGTH
    elif elem.tag == _PIXEL_DATA and elem.VR in ("OB", "OW") and not elem.is_buffered:
        value, vr, offset = elem.value, elem.VR, elem.file_tell
        undefined = elem.is_undefined_length
        if not isinstance(value, bytes) or len(value) % 2:  # odd lengths are padded
            return None
        if undefined and not value.startswith(_ITEM[little]):
            return None
    else:
        return None
    if not isinstance(value, bytes) or offset is None:
        return None
    size = len(value)
    length = _UNDEFINED_LENGTH if undefined else size
    if not implicit and (vr is None or len(vr) != 2):
        return None
    if not implicit and undefined and vr not in EXPLICIT_VR_LENGTH_32:
        return None  # dcmwrite writes these differently
    head = _header(int(elem.tag), vr or "", length, implicit, little)
    if head is None:
        return None
    start, end = offset - len(head), offset + size
    if start < 0 or not source.startswith(head, start) or not source.startswith(value, offset):
        return None
    if undefined:
        if not source.startswith(_SEQUENCE_DELIMITER[little], end):
            return None
        end += len(_SEQUENCE_DELIMITER[little])
    return start, end


def _header(tag: int, vr: str, length: int, implicit: bool, little: bool) -> bytes | None:
    """An element's tag and length (and VR), as ``write_data_element`` writes them; None
    when a short-length VR's value is too long for its 16-bit length."""
    implicit_pack, short_pack, long_pack = _HEADERS[little]
    if implicit:
        return implicit_pack(tag >> 16, tag & 0xFFFF, length)
    if vr in EXPLICIT_VR_LENGTH_32:
        return long_pack(tag >> 16, tag & 0xFFFF, vr.encode(), length)
    if length > 0xFFFF:
        return None
    return short_pack(tag >> 16, tag & 0xFFFF, vr.encode(), length)


def encode_simple(elem: DataElement | RawDataElement, implicit: bool, little: bool) -> bytes | None:
    """The bytes ``write_data_element`` writes for a changed element holding plain ASCII
    text or integers, or None for anything else (left to pydicom).

    Examples
    --------
    >>> encode_simple(DataElement(0x00100020, "LO", "ANON-1"), False, True)
    b'\\x10\\x00 \\x00LO\\x06\\x00ANON-1'
    >>> encode_simple(DataElement(0x00280010, "US", 512), True, True)
    b'(\\x00\\x10\\x00\\x02\\x00\\x00\\x00\\x00\\x02'
    >>> encode_simple(DataElement(0x00100010, "PN", "Doe^Jane"), False, True) is None
    True
    """
    if not isinstance(elem, DataElement) or elem.is_buffered:
        return None
    vr, value = elem.VR, elem.value
    if vr not in _TEXT_VRS and vr not in _INT_VRS:
        return None
    values = list(value) if isinstance(value, MultiValue) else [value]
    if value is None or value == "" or values == []:
        body = b""
    elif vr in _TEXT_VRS:
        if not all(isinstance(v, str) for v in values):
            return None
        text = "\\".join(values)
        if not text.isascii():
            return None
        body = text.encode("ascii")
        if len(body) % 2:
            body += b"\0" if vr == "UI" else b" "
    else:
        if not all(type(v) is int for v in values):
            return None
        try:
            body = struct.pack(f"{'<' if little else '>'}{len(values)}{_INT_VRS[vr]}", *values)
        except struct.error:  # out of range: pydicom says so
            return None
    head = _header(int(elem.tag), str(vr), len(body), implicit, little)
    return None if head is None else head + body
