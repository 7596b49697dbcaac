"""Recognise image files by their content, and walk folders for the importer.

:func:`sniff` looks at magic bytes first and trusts the file name only as a fallback, so a
``.png`` that holds a JPEG is read as a JPEG and a DICOM file named ``1.2.840.1136`` (as
PACS exports name them) is still found. When the content matches nothing, a known
extension wins so that the reader for that format can explain what is wrong with the file
instead of the importer silently skipping it.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from enum import StrEnum
from pathlib import Path

from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info

from medlabel.core.errors import InvalidInputError


class FileKind(StrEnum):
    """File formats the importer distinguishes."""

    DICOM = "dicom"
    DICOMDIR = "dicomdir"  # a DICOM media directory: an index, not an image; skip it
    NIFTI = "nifti"
    PNG = "png"
    JPEG = "jpeg"
    TIFF = "tiff"
    ZIP = "zip"
    UNKNOWN = "unknown"


JUNK_NAMES = frozenset(
    {
        ".DS_Store",
        "Thumbs.db",
        "desktop.ini",
        "__MACOSX",
        "$RECYCLE.BIN",
        "System Volume Information",
    }
)
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_HEAD = 1024
_GZIP_PEEK = 64 * 1024  # compressed bytes read to inflate a NIfTI header
_NIFTI1_MAGICS = (b"n+1\x00", b"ni1\x00")
_NIFTI2_MAGICS = (b"n+2\x00\r\n\x1a\n", b"ni2\x00\r\n\x1a\n")
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_DICOM_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI "
    b"UL UN UR US UT UV".split()
)
_EXTENSIONS = {
    ".dcm": FileKind.DICOM,
    ".dicom": FileKind.DICOM,
    ".nii": FileKind.NIFTI,
    ".png": FileKind.PNG,
    ".jpg": FileKind.JPEG,
    ".jpeg": FileKind.JPEG,
    ".jpe": FileKind.JPEG,
    ".tif": FileKind.TIFF,
    ".tiff": FileKind.TIFF,
    ".zip": FileKind.ZIP,
}


def is_junk(name: str) -> bool:
    """True for operating-system clutter: ``.DS_Store``, ``__MACOSX``, ``._*``, ``Thumbs.db``.

    Examples
    --------
    >>> is_junk("__MACOSX"), is_junk("._IM0001"), is_junk("IM0001")
    (True, True, False)
    """
    return name in JUNK_NAMES or name.startswith("._")


def sniff(path: Path) -> FileKind:
    """Tell the format of a file from its first bytes, falling back to its extension.

    Magic bytes, in this order: ``DICM`` at offset 128 (a DICOMDIR when the file meta
    MediaStorageSOPClassUID is 1.2.840.10008.1.3.10); PNG signature; JPEG SOI; TIFF
    ``II*``/``MM*`` (and BigTIFF); zip ``PK\\3\\4`` (or an empty archive); NIfTI-1
    (``sizeof_hdr`` 348 and ``n+1``/``ni1`` at offset 344) and NIfTI-2 (540 and
    ``n+2``/``ni2`` at offset 4), also inside gzip; finally a DICOM data set without
    preamble (see :func:`_looks_like_raw_dicom`). A file named ``DICOMDIR`` is always a
    DICOMDIR. Without a match, the extension decides (``.dcm``, ``.nii``, ``.nii.gz``,
    ``.png``, ``.jpg``, ``.tif``, ``.zip``...), else :attr:`FileKind.UNKNOWN`.

    Parameters
    ----------
    path
        A regular file.

    Raises
    ------
    InvalidInputError
        The path is not a readable file.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> sniff(Path(get_testdata_file("CT_small.dcm")))
    <FileKind.DICOM: 'dicom'>
    """
    if path.name.upper() == "DICOMDIR":
        return FileKind.DICOMDIR
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD)
            if head.startswith(b"\x1f\x8b"):
                head += fh.read(_GZIP_PEEK - len(head))
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the file ({exc.strerror})") from None
    kind = _by_magic(head, path)
    if kind is not None:
        return kind
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return FileKind.NIFTI
    return _EXTENSIONS.get(Path(name).suffix, FileKind.UNKNOWN)


def iter_files(paths: Sequence[Path]) -> Iterator[Path]:
    """Yield the files named by ``paths``, walking folders recursively.

    Folders are walked depth-first with the entries of each folder sorted by name, so the
    order is that of the sorted relative paths and the same on every run. Hidden files and
    folders (name starting with ``.``) and junk (:func:`is_junk`) found while walking are
    skipped; a file named explicitly is yielded unless it is junk. Symbolic links to
    folders are not followed (no cycles); links to files are. Each file is yielded once,
    even when it is reachable twice.

    Parameters
    ----------
    paths
        Files and folders, visited in the given order.

    Raises
    ------
    InvalidInputError
        A path does not exist or a folder cannot be listed.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for n in ("b.dcm", "a/2.dcm", "a/10.dcm", ".hidden", "a/.DS_Store"):
    ...     (root / n).parent.mkdir(exist_ok=True)
    ...     _ = (root / n).write_bytes(b"")
    >>> [p.relative_to(root).as_posix() for p in iter_files([root])]
    ['a/10.dcm', 'a/2.dcm', 'b.dcm']
    """
    seen: set[tuple[int, int]] = set()
    for path in paths:
        if path.is_dir():
            yield from _walk(path, seen)
        elif path.is_file():
            if not is_junk(path.name) and _first_visit(path, seen):
                yield path
        else:
            raise InvalidInputError(f"{path}: no such file or folder")


def _walk(folder: Path, seen: set[tuple[int, int]]) -> Iterator[Path]:
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise InvalidInputError(f"{folder}: cannot list the folder ({exc.strerror})") from None
    for entry in entries:
        if entry.name.startswith(".") or is_junk(entry.name):
            continue
        path = folder / entry.name
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(path, seen)
        elif entry.is_file() and _first_visit(path, seen):
            yield path


def _first_visit(path: Path, seen: set[tuple[int, int]]) -> bool:
    st = path.stat()
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True


def _by_magic(head: bytes, path: Path) -> FileKind | None:
    if head[128:132] == b"DICM":
        return _dicom_or_dicomdir(head, path)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileKind.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return FileKind.JPEG
    if head.startswith(_TIFF_SIGNATURES):
        return FileKind.TIFF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return FileKind.ZIP
    if _is_nifti_header(head):
        return FileKind.NIFTI
    if head.startswith(b"\x1f\x8b"):
        return FileKind.NIFTI if _is_nifti_header(_gunzip_head(head)) else None
    if _looks_like_raw_dicom(head):
        return FileKind.DICOM
    return None


def _dicom_or_dicomdir(head: bytes, path: Path) -> FileKind:
    # the whole file meta information in the bytes read, without the DICOMDIR's SOP Class
    # UID anywhere in it: a DICOM file (no need to parse it)
    if head[132:140] == b"\x02\x00\x00\x00UL\x04\x00" and len(head) >= 144:
        end = 144 + struct.unpack_from("<L", head, 140)[0]
        if end <= len(head) and _DICOMDIR_SOP_CLASS.encode() not in head[144:end]:
            return FileKind.DICOM
    try:
        meta = read_file_meta_info(path)
    except (InvalidDicomError, OSError, ValueError, EOFError, struct.error, KeyError):
        return FileKind.DICOM  # damaged meta: the DICOM reader will say what is wrong
    uid = meta.get("MediaStorageSOPClassUID")
    return FileKind.DICOMDIR if str(uid or "") == _DICOMDIR_SOP_CLASS else FileKind.DICOM


def _is_nifti_header(head: bytes) -> bool:
    if len(head) < 12:
        return False
    sizes = {struct.unpack("<i", head[:4])[0], struct.unpack(">i", head[:4])[0]}
    if 540 in sizes and head[4:12] in _NIFTI2_MAGICS:
        return True
    return 348 in sizes and len(head) >= 348 and head[344:348] in _NIFTI1_MAGICS


def _gunzip_head(data: bytes) -> bytes:
    """The first 540 decompressed bytes of a (possibly partial) gzip stream."""
    try:
        return zlib.decompressobj(wbits=31).decompress(data, 540)
    except zlib.error:
        return b""


def _looks_like_raw_dicom(head: bytes) -> bool:
    """Heuristic for a DICOM data set stored without preamble and ``DICM`` prefix.

    Old and ACR-NEMA-style files start directly with the first element. We accept the
    file when that element's tag, read little- or big-endian, is in group 0x0002 (file
    meta) or 0x0008 (identifying information, e.g. (0008,0005) Specific Character Set)
    with an element number below 0x0100, and is followed either by a valid explicit VR
    (two letters such as ``CS``) or, for implicit VR little endian, by an even value
    length below 64 KiB. Other formats rarely start like this, and the known image
    formats are matched before this test.
    """
    if len(head) < 8:
        return False
    for order in "<>":
        group, element = struct.unpack(order + "HH", head[:4])
        if group not in (0x0002, 0x0008) or element >= 0x0100:
            continue
        if head[4:6] in _DICOM_VRS:
            return True
        length = struct.unpack("<I", head[4:8])[0]
        if order == "<" and length < 0x10000 and length % 2 == 0:
            return True
    return False
