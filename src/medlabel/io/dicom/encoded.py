"""DICOM files as encoded elements: scan a file's bytes without decoding values, and
assemble a file from encoded elements (explicit VR little endian data sets only).

The import's hot path uses this to de-identify a file without building a pydicom data
set (see :mod:`medlabel.security.deid.encoded`). Anything the scanner does not read
exactly as pydicom would (implicit VR or big endian data sets, deflated files, a missing
preamble, unknown VRs, undefined lengths other than sequences and encapsulated Pixel
Data, elements out of order, truncated or malformed structures) raises
:class:`NotScannableError`, and the caller takes pydicom's way instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pydicom.uid as uids
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.tag import BaseTag
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

from medlabel.io.dicom.writing import file_header

PIXEL_DATA = 0x7FE00010
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_PREFIX = 132  # preamble and "DICM"
_META_START = _PREFIX + 12  # after the group length element
_HEAD = struct.Struct("<HH2sH")  # tag, VR, 16-bit length (or reserved)
_UL = struct.Struct("<L")
_TAG_LENGTH = struct.Struct("<HHL")  # items and delimiters
_SHORT = struct.Struct("<HH2sH").pack
_LONG = struct.Struct("<HH2s2xL").pack
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_VRS = {str(vr).encode(): str(vr) for vr in VR if len(str(vr)) == 2}
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\0\0\0\0"
_ITEM_DELIMITER = b"\xfe\xff\x0d\xe0\0\0\0\0"


#: an element's bytes: a view of the source's for large ones kept as they were
Encoded = bytes | memoryview


class NotScannableError(Exception):
    """The bytes are not read here (see the module's description)."""


@dataclass(slots=True)
class Element:
    """One element: its tag and VR, where its header starts, its value starts and ends
    (``end`` excludes a sequence delimiter, ``stop`` includes it), and, for sequences,
    its items."""

    tag: int
    vr: str
    start: int
    value: int
    end: int
    stop: int
    undefined: bool = False
    items: list[Item] | None = None


@dataclass(slots=True)
class Item:
    """One sequence item: where it starts and stops (delimiter included), whether its
    length was undefined, and its elements."""

    start: int
    stop: int
    undefined: bool
    elements: list[Element] = field(default_factory=list)


@dataclass(slots=True)
class ScannedFile:
    """A Part 10 file: its bytes, the file meta elements and the data set's elements."""

    data: bytes
    meta: list[Element]
    elements: list[Element]
    syntax: uids.UID


def scan_file(data: bytes) -> ScannedFile:
    """Scan a Part 10 file whose data set is explicit VR little endian.

    Raises
    ------
    NotScannableError
        The file is anything else, or not exactly readable here.
    """
    if len(data) < _PREFIX + 8 or data[128:132] != b"DICM":
        raise NotScannableError("no preamble")
    meta, pos = _scan(data, _PREFIX, len(data), group=2)
    syntax_element = next((e for e in meta if e.tag == 0x00020010), None)
    if syntax_element is None:
        raise NotScannableError("no transfer syntax")
    values = split_strings(value_bytes(data, syntax_element))
    syntax = uids.UID(values[0] if values else "")
    if (
        not syntax.is_transfer_syntax
        or syntax.is_private
        or syntax.is_deflated
        or syntax.is_implicit_VR
        or not syntax.is_little_endian
    ):
        raise NotScannableError("not explicit VR little endian")
    elements, end = _scan(data, pos, len(data))
    if end != len(data):
        raise NotScannableError("trailing bytes")
    for element in elements:
        if element.tag >> 16 in (0, 2):
            raise NotScannableError("command or file meta group in the data set")
        if element.tag == PIXEL_DATA and element.undefined != bool(syntax.is_encapsulated):
            raise NotScannableError("pixel data encoding does not match the transfer syntax")
    return ScannedFile(data, meta, elements, syntax)


def _scan(
    data: bytes, pos: int, end: int, *, group: int | None = None, in_item: bool = False
) -> tuple[list[Element], int]:
    """The elements from ``pos`` to ``end`` (or to an item delimiter when ``in_item`` and
    the item has an undefined length, or while the group is ``group``), and where the
    scan stopped."""
    elements: list[Element] = []
    last = -1
    head = _HEAD.unpack_from
    while pos < end:
        if pos + 8 > end:
            raise NotScannableError("truncated element")
        g, e, vr_bytes, short = head(data, pos)
        if group is not None and g != group:
            break
        tag = g << 16 | e
        if g == 0xFFFE:
            if in_item and tag == _ITEM_END and data[pos + 4 : pos + 8] == b"\0\0\0\0":
                return elements, pos
            raise NotScannableError("unexpected item tag")
        if tag <= last:
            raise NotScannableError("elements out of order")
        last = tag
        vr = _VRS.get(vr_bytes)
        if vr is None:
            raise NotScannableError("unknown VR")
        if vr in _LONG_VRS:
            if pos + 12 > end:
                raise NotScannableError("truncated element")
            (length,) = _UL.unpack_from(data, pos + 8)
            value = pos + 12
        else:
            length, value = short, pos + 8
        if length == _UNDEFINED:
            if vr == "SQ":
                items, stop = _items(data, value, end, undefined=True)
                elements.append(Element(tag, vr, pos, value, stop - 8, stop, True, items))
            elif tag == PIXEL_DATA:
                stop = _fragments(data, value, end)
                elements.append(Element(tag, vr, pos, value, stop - 8, stop, True))
            else:
                raise NotScannableError("undefined length")
            pos = stop
            continue
        stop = value + length
        if stop > end:
            raise NotScannableError("truncated value")
        inner = _items(data, value, stop, undefined=False)[0] if vr == "SQ" else None
        elements.append(Element(tag, vr, pos, value, stop, stop, False, inner))
        pos = stop
    if in_item:
        raise NotScannableError("item without delimiter")
    return elements, pos


def _items(data: bytes, pos: int, end: int, *, undefined: bool) -> tuple[list[Item], int]:
    """A sequence's items from ``pos``; with ``undefined`` up to and including its
    delimiter, else up to ``end``. Returns the items and where the sequence stops."""
    items: list[Item] = []
    while True:
        if not undefined and pos == end:
            return items, pos
        if pos + 8 > end:
            raise NotScannableError("truncated sequence")
        g, e, length = _TAG_LENGTH.unpack_from(data, pos)
        tag = g << 16 | e
        if undefined and tag == _SEQUENCE_END and length == 0:
            return items, pos + 8
        if tag != _ITEM:
            raise NotScannableError("not an item")
        if length == _UNDEFINED:
            elements, stop = _scan(data, pos + 8, end, in_item=True)
            stop += 8  # the item delimiter
            items.append(Item(pos, stop, True, elements))
        else:
            stop = pos + 8 + length
            if stop > end:
                raise NotScannableError("truncated item")
            elements, _ = _scan(data, pos + 8, stop)
            items.append(Item(pos, stop, False, elements))
        pos = stop


def _fragments(data: bytes, pos: int, end: int) -> int:
    """Where encapsulated Pixel Data starting at ``pos`` stops (after its delimiter)."""
    while pos + 8 <= end:
        g, e, length = _TAG_LENGTH.unpack_from(data, pos)
        tag = g << 16 | e
        if tag == _SEQUENCE_END:
            return pos + 8
        if tag != _ITEM or length == _UNDEFINED:
            raise NotScannableError("not a fragment")
        pos += 8 + length
    raise NotScannableError("truncated pixel data")


def value_bytes(data: bytes, element: Element) -> bytes:
    """The element's value as stored."""
    return data[element.value : element.end]


def split_strings(value: bytes) -> list[str]:
    """The values of a string element (UI, DA, DT...) from its stored bytes: split at
    backslashes, padding stripped, empty values dropped (ASCII; others replaced)."""
    text = value.decode("ascii", "replace")
    return [v for v in (v.strip("\x00 ") for v in text.split("\\")) if v]


def encode(tag: int, vr: str, body: bytes) -> bytes:
    """An element as explicit VR little endian bytes (``body`` already padded)."""
    if vr in _LONG_VRS:
        return _LONG(tag >> 16, tag & 0xFFFF, vr.encode(), len(body)) + body
    if len(body) > 0xFFFF:
        raise NotScannableError("value too long for its VR")
    return _SHORT(tag >> 16, tag & 0xFFFF, vr.encode(), len(body)) + body


def encode_text(tag: int, vr: str, values: str | list[str]) -> bytes:
    """A text element with ASCII ``values`` as pydicom writes it (joined by
    backslashes, padded to an even length: UI with a NUL, the others with a space)."""
    text = values if isinstance(values, str) else "\\".join(values)
    if not text.isascii():
        raise NotScannableError("not ASCII")
    body = text.encode("ascii")
    if len(body) % 2:
        body += b"\0" if vr == "UI" else b" "
    return encode(tag, vr, body)


def encode_sequence(tag: int, undefined: bool, items: list[tuple[bool, bytes]]) -> bytes:
    """A sequence as pydicom writes it: its length and each item's undefined when they
    were so when read (then closed by delimiters), else the lengths of their content.
    ``items`` are (undefined, encoded content)."""
    parts = []
    for item_undefined, content in items:
        if item_undefined:
            parts.append(_TAG_LENGTH.pack(0xFFFE, 0xE000, _UNDEFINED) + content + _ITEM_DELIMITER)
        else:
            parts.append(_TAG_LENGTH.pack(0xFFFE, 0xE000, len(content)) + content)
    body = b"".join(parts)
    if undefined:
        return _LONG(tag >> 16, tag & 0xFFFF, b"SQ", _UNDEFINED) + body + _SEQUENCE_DELIMITER
    return _LONG(tag >> 16, tag & 0xFFFF, b"SQ", len(body)) + body


def encode_with_pydicom(element: DataElement, charset: object = None) -> bytes:
    """``element`` as pydicom's writer encodes it (explicit VR little endian) in a data
    set with ``charset`` as its Specific Character Set."""
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = False, True
    write_data_element(fp, element, charset)  # type: ignore[arg-type]
    return fp.getvalue()


class EncodedFile:
    """A file being assembled from encoded data set elements (explicit VR little
    endian), with a pydicom view of it.

    Parameters
    ----------
    preamble, meta
        The preamble and file meta information (completed and encoded as
        ``dcmwrite`` does, by :func:`~medlabel.io.dicom.writing.file_header`).
    elements
        Tag → the element's bytes (header and value), any order.
    """

    def __init__(self, preamble: bytes, meta: FileMetaDataset, elements: dict[int, Encoded]):
        self._preamble = preamble
        self._meta = meta
        self._elements = elements
        self._data: bytes | None = None
        self._dataset: Dataset | None = None
        self._head: bytes | None = None

    def put_text(self, tag: int, vr: str, value: str) -> None:
        """Add or replace a text element with an ASCII value (in the file and, if it
        was made, in :attr:`dataset`)."""
        self._elements[tag] = encode_text(tag, vr, value)
        self._data = None
        if tag in (0x00080016, 0x00080018):  # named in the file meta information too
            self._head = None
        if self._dataset is not None:
            self._dataset[tag] = DataElement(tag, vr, value)

    @property
    def data(self) -> bytes:
        """The file's bytes."""
        if self._data is None:
            self._data = b"".join(
                [self._header(), *(self._elements[t] for t in sorted(self._elements))]
            )
        return self._data

    @property
    def dataset(self) -> Dataset:
        """The file as pydicom reads it (values decoded on access; Pixel Data a view of
        the file's bytes, see :meth:`decodable_pixels`). Changes to it do not change the
        file; :meth:`put_text` changes both."""
        if self._dataset is None:
            offset = len(self._header())
            raw: dict[BaseTag, DataElement | RawDataElement] = {}
            for tag in sorted(self._elements):
                encoded = self._elements[tag]
                raw[BaseTag(tag)] = _raw(encoded, offset)
                offset += len(encoded)
            ds = Dataset(raw)
            ds.file_meta = self._meta
            ds.preamble = self._preamble
            ds.set_original_encoding(False, True, ds._character_set)
            self._dataset = ds
        return self._dataset

    def decodable_pixels(self) -> None:
        """Make :attr:`dataset`'s encapsulated Pixel Data bytes, which pydicom's
        decoders need (else it is a view of the file's bytes: no copy of a compressed
        file that is only stored)."""
        elements = self.dataset._dict
        raw = elements.get(BaseTag(PIXEL_DATA))
        if not isinstance(raw, RawDataElement) or raw.length != _UNDEFINED:
            return
        if isinstance(raw.value, memoryview):
            elements[BaseTag(PIXEL_DATA)] = raw._replace(value=bytes(raw.value))

    def _header(self) -> bytes:
        """Preamble, ``DICM`` and the file meta information, as ``dcmwrite`` writes
        them for this data set."""
        if self._head is None:
            key, uid = self._header_key()
            template = _HEADERS.get(key) if key is not None else None
            if template is not None:
                self._head = template.with_instance_uid(uid)
            else:
                shell = Dataset()
                for tag in (0x00080016, 0x00080018):  # for the Media Storage SOP UIDs
                    if tag in self._elements:
                        shell[tag] = _raw(self._elements[tag], 0)
                shell.file_meta = self._meta
                shell.preamble = self._preamble
                self._head = file_header(shell)
                if key is not None:
                    made = _HeaderTemplate.split(self._head, uid)
                    if made is not None:
                        if len(_HEADERS) >= 64:
                            _HEADERS.clear()
                        _HEADERS[key] = made
        return self._head

    def _header_key(self) -> tuple[tuple[object, ...] | None, str]:
        """What the file meta information depends on besides the SOP Instance UID (it
        becomes the Media Storage SOP Instance UID), and that UID; None when unusual."""
        found = self._elements.get(0x00080018)
        instance = bytes(found) if found is not None else b""
        if not instance.startswith(b"\x08\x00\x18\x00UI"):
            return None, ""
        values = split_strings(instance[8:])
        if len(values) != 1:
            return None, ""
        sop_class = self._elements.get(0x00080016)
        parts: list[object] = [self._preamble, None if sop_class is None else bytes(sop_class)]
        for element in self._meta.elements():
            if element.tag == 0x00020003:
                continue
            value = element.value
            if not isinstance(value, bytes | str):
                return None, ""
            parts.append((int(element.tag), element.VR, value))
        return tuple(parts), values[0]


class _HeaderTemplate:
    """A file header (preamble, ``DICM``, file meta information) made by
    :func:`~medlabel.io.dicom.writing.file_header`, for other files that differ only in
    their SOP Instance UID: the Media Storage SOP Instance UID element is replaced and
    the group length set again."""

    def __init__(self, prefix: bytes, before: bytes, after: bytes) -> None:
        self.prefix, self.before, self.after = prefix, before, after

    @classmethod
    def split(cls, header: bytes, uid: str) -> _HeaderTemplate | None:
        element = encode_text(0x00020003, "UI", uid)
        start = header.find(element, _META_START)
        if start < 0 or header.find(element, start + 1) >= 0:
            return None
        if _UL.unpack_from(header, _META_START - 4)[0] != len(header) - _META_START:
            return None
        return cls(
            header[: _META_START - 4], header[_META_START:start], header[start + len(element) :]
        )

    def with_instance_uid(self, uid: str) -> bytes:
        element = encode_text(0x00020003, "UI", uid)
        length = len(self.before) + len(element) + len(self.after)
        return b"".join((self.prefix, _UL.pack(length), self.before, element, self.after))


#: header templates by what the file meta information depends on (per process)
_HEADERS: dict[tuple[object, ...], _HeaderTemplate] = {}


def _raw(encoded: Encoded, offset: int) -> RawDataElement:
    """A pydicom raw element for an encoded element found at ``offset`` in a file
    (Pixel Data's value a view of ``encoded``, not a copy)."""
    g, e, vr_bytes, short = _HEAD.unpack_from(encoded, 0)
    vr = _VRS[vr_bytes]
    if vr in _LONG_VRS:
        (length,) = _UL.unpack_from(encoded, 8)
        start = 12
    else:
        length, start = short, 8
    if length == _UNDEFINED:
        value = encoded[start:-8]  # without the sequence delimiter, as pydicom reads it
        if vr == "SQ":  # a sequence as one of known length: its items read the same
            length = len(value)
    else:
        value = encoded[start : start + length]
    tag = g << 16 | e
    if isinstance(value, memoryview) and tag != PIXEL_DATA:
        value = bytes(value)
    return RawDataElement(
        BaseTag(tag),
        vr,
        length,
        value,  # type: ignore[arg-type]  # pydicom reads Pixel Data from any buffer
        offset + start,
        False,
        True,
    )


def meta_dataset(file: ScannedFile) -> FileMetaDataset:
    """The file meta information as pydicom reads it (raw elements)."""
    meta = FileMetaDataset()
    for element in file.meta:
        if element.undefined:
            raise NotScannableError("undefined length in the file meta information")
        meta[element.tag] = RawDataElement(
            BaseTag(element.tag),
            element.vr,
            element.end - element.value,
            value_bytes(file.data, element),
            element.value,
            False,
            True,
        )
    return meta
