"""Safe extraction of uploaded zip archives.

An upload is untrusted: member names may try to escape the destination (``../evil``,
``/etc/passwd``, ``C:\\x``), entries may be symlinks or device files, and a few kilobytes
may inflate to terabytes. :func:`extract_zip` checks every member before writing anything,
then counts the bytes it actually writes, because the sizes in the headers are written by
the attacker too. Extraction goes into a hidden staging folder next to ``dest`` that is
renamed to ``dest`` only when every member was written, so a rejected archive leaves
nothing behind.

Nested archives are extracted as ordinary files; whether to open them is the caller's
decision. macOS and Windows clutter (``__MACOSX/``, ``.DS_Store``, ``._*``, ``Thumbs.db``)
is skipped.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from medlabel.core.errors import InvalidInputError, TooLargeError, UnsupportedFormatError
from medlabel.io.sniff import is_junk

_CHUNK = 1024 * 1024
# The expansion ratio is only judged for members larger than this: small files of zeros or
# text legitimately compress more than any sensible limit and cannot hurt anyone.
_RATIO_FLOOR = 1024 * 1024
_METHODS = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)
_DRIVE = re.compile(r"^[A-Za-z]:")
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)


@dataclass(frozen=True)
class _Member:
    info: zipfile.ZipInfo
    relative: PurePosixPath
    is_dir: bool


def extract_zip(
    path: Path,
    dest: Path,
    *,
    max_members: int,
    max_total_bytes: int,
    max_ratio: float,
) -> list[Path]:
    """Extract a zip archive into ``dest``, all or nothing.

    Parameters
    ----------
    path
        The archive (uploads are written to a temporary file first).
    dest
        Destination folder; must not exist yet or be empty. Its parent is created.
    max_members
        Largest number of entries (files, folders and skipped junk) in the archive.
    max_total_bytes
        Largest total uncompressed size of the extracted files, declared and actual.
    max_ratio
        Largest uncompressed/compressed size ratio of one member (judged for members
        above 1 MiB).

    Returns
    -------
    list of Path
        The extracted files under ``dest``, in archive order (folders not listed).

    Raises
    ------
    InvalidInputError
        Not a zip file; a member name that is absolute or contains ``..``; a symlink or
        device entry; duplicate names; data that is corrupt or larger than declared.
    UnsupportedFormatError
        Encrypted members or compression methods other than stored, deflate, bzip2, LZMA.
    TooLargeError
        More than ``max_members`` entries, more than ``max_total_bytes`` of data or a
        member expanding more than ``max_ratio`` times.
    ValueError
        ``dest`` exists and is not an empty folder.

    Examples
    --------
    >>> import io, tempfile
    >>> tmp = Path(tempfile.mkdtemp())
    >>> with zipfile.ZipFile(tmp / "up.zip", "w") as zf:
    ...     zf.writestr("scan/a.dcm", b"x")
    ...     zf.writestr("__MACOSX/scan/._a.dcm", b"junk")
    >>> files = extract_zip(tmp / "up.zip", tmp / "out", max_members=10,
    ...                     max_total_bytes=100, max_ratio=100.0)
    >>> [f.relative_to(tmp / "out").as_posix() for f in files]
    ['scan/a.dcm']
    """
    label = path.name
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"destination {dest} must not exist or be an empty folder")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InvalidInputError(f"{label}: not a readable zip archive ({reason})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise TooLargeError(
                f"{label}: archive has {len(infos)} entries, above the limit of {max_members} "
                "(MEDLABEL_MAX_ARCHIVE_MEMBERS); split it into smaller archives"
            )
        members = _plan(infos, label, max_total_bytes=max_total_bytes, max_ratio=max_ratio)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
        )
        try:
            _write_members(zf, members, staging, label)
            if dest.exists():  # keep the permissions of the folder the caller made
                os.chmod(staging, stat.S_IMODE(dest.stat().st_mode))
                dest.rmdir()
            os.replace(staging, dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return [dest / Path(*m.relative.parts) for m in members if not m.is_dir]


def _plan(
    infos: list[zipfile.ZipInfo], label: str, *, max_total_bytes: int, max_ratio: float
) -> list[_Member]:
    """Validate every entry from the central directory; nothing is read or written."""
    members: list[_Member] = []
    seen: set[PurePosixPath] = set()
    total = 0
    for info in infos:
        relative = _safe_relative(info.filename, label)
        if relative is None or any(is_junk(part) for part in relative.parts):
            continue
        where = f"{label}: member {info.filename!r}"
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise InvalidInputError(f"{where} is a symbolic link; links are not accepted")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise InvalidInputError(f"{where} is a device, pipe or socket entry")
        is_dir = info.is_dir() or kind == stat.S_IFDIR
        if info.flag_bits & 0x1:
            raise UnsupportedFormatError(
                f"{where} is encrypted; upload an archive without a password"
            )
        if not is_dir and info.compress_type not in _METHODS:
            raise UnsupportedFormatError(
                f"{where} uses compression method {info.compress_type}; re-create the archive "
                "with standard deflate compression"
            )
        if relative in seen:
            raise InvalidInputError(f"{where} appears twice in the archive")
        seen.add(relative)
        if not is_dir:
            total += info.file_size
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > _RATIO_FLOOR and ratio > max_ratio:
                raise TooLargeError(
                    f"{where} expands {ratio:.0f} times ({info.compress_size} → "
                    f"{info.file_size} bytes), above the limit of {max_ratio:g} "
                    "(MEDLABEL_MAX_ARCHIVE_RATIO); this looks like a zip bomb"
                )
        members.append(_Member(info, relative, is_dir))
    if total > max_total_bytes:
        raise TooLargeError(
            f"{label}: archive unpacks to {total} bytes, above the limit of "
            f"{max_total_bytes} (MEDLABEL_MAX_ARCHIVE_BYTES); split it into smaller archives"
        )
    return members


def _safe_relative(name: str, label: str) -> PurePosixPath | None:
    """The member's path relative to the destination, or None for the root folder."""
    where = f"{label}: member {name!r}"
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or _DRIVE.match(normalised):
        raise InvalidInputError(f"{where} has an absolute path; archives must hold relative paths")
    parts = [p for p in normalised.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInputError(f"{where} points outside the archive folder ('..')")
    return PurePosixPath(*parts) if parts else None


def _write_members(zf: zipfile.ZipFile, members: list[_Member], root: Path, label: str) -> None:
    for member in members:
        target = root.joinpath(*member.relative.parts)
        where = f"{label}: member {member.info.filename!r}"
        try:
            if member.is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member.info) as src, open(target, "xb") as dst:
                _copy_limited(src, dst, declared=member.info.file_size, where=where)
        except _READ_ERRORS as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise InvalidInputError(f"{where} could not be extracted ({reason})") from None


def _copy_limited(src: IO[bytes], dst: IO[bytes], *, declared: int, where: str) -> None:
    """Copy ``src`` to ``dst``, counting bytes and refusing more than ``declared``.

    Capping every member at its declared size bounds the total by the declared sum that
    :func:`_plan` checked, whatever the compressed stream really holds.
    """
    written = 0
    while chunk := src.read(_CHUNK):
        written += len(chunk)
        if written > declared:
            raise InvalidInputError(
                f"{where} holds more data than its header declares ({declared} bytes); the "
                "archive is damaged or crafted to hide its size"
            )
        dst.write(chunk)
    if written != declared:
        raise InvalidInputError(f"{where} is truncated ({written} of {declared} bytes)")
