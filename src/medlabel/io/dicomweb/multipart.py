"""``multipart/related`` bodies of DICOMweb (PS3.18 §8.6): read as a stream, written
whole.

WADO-RS answers a study retrieval with one part per instance; :func:`iter_parts` writes
each part to its own file as the bytes arrive, so a study never has to fit in memory.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from medlabel.core.errors import UnsupportedFormatError

#: longest header block of one part we accept (they are a few lines)
MAX_HEADER_BYTES = 64 * 1024

_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)


def boundary_of(content_type: str) -> str:
    """The ``boundary`` parameter of a ``multipart/related`` content type.

    Raises
    ------
    UnsupportedFormatError
        The content type is not multipart or names no boundary.

    Examples
    --------
    >>> boundary_of('multipart/related; type="application/dicom"; boundary=abc')
    'abc'
    """
    if not content_type.lower().startswith("multipart/"):
        raise UnsupportedFormatError(f"expected a multipart answer, got {content_type!r}")
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise UnsupportedFormatError(f"multipart answer without a boundary: {content_type!r}")
    return m.group(1) or m.group(2)


@dataclass(frozen=True)
class Part:
    """One part written to disk: its file, content type and size in bytes."""

    path: Path
    content_type: str
    size: int


def _headers(block: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def iter_parts(
    chunks: Iterable[bytes],
    boundary: str,
    new_path: Callable[[int], Path],
) -> Iterator[Part]:
    """Split a multipart body into files, yielding each part once it is complete.

    Parameters
    ----------
    chunks
        The body, in pieces of any size.
    boundary
        The boundary from the content type (:func:`boundary_of`).
    new_path
        ``new_path(i)`` gives the file to write part ``i`` (0-based) to.

    Raises
    ------
    UnsupportedFormatError
        The body ends before its closing delimiter or a part's headers are too long.
    """
    delim = b"\r\n--" + boundary.encode("latin-1")
    keep = len(delim) + 1
    buf = b"\r\n"  # so the first delimiter looks like the others
    state = "preamble"
    out: BinaryIO | None = None
    part: tuple[Path, str] | None = None
    written = 0
    n = 0
    try:
        for chunk in chunks:
            buf += chunk
            while True:
                if state in ("preamble", "body"):
                    idx = buf.find(delim)
                    if idx < 0:
                        if len(buf) > keep:
                            if out is not None:
                                out.write(buf[:-keep])
                                written += len(buf) - keep
                            buf = buf[-keep:]
                        break
                    if out is not None and part is not None:
                        out.write(buf[:idx])
                        written += idx
                        out.close()
                        out = None
                        yield Part(part[0], part[1], written)
                    buf = buf[idx + len(delim) :]
                    state = "delimiter"
                if state == "delimiter":
                    if len(buf) < 2:
                        break
                    if buf[:2] == b"--":
                        return
                    state = "headers"
                if state == "headers":
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buf) > MAX_HEADER_BYTES:
                            raise UnsupportedFormatError("a multipart part has oversized headers")
                        break
                    headers = _headers(buf[:end])
                    buf = buf[end + 4 :]
                    path = new_path(n)
                    n += 1
                    part = (path, headers.get("content-type", ""))
                    out = path.open("wb")
                    written = 0
                    state = "body"
        raise UnsupportedFormatError("the multipart answer ended before its closing boundary")
    finally:
        if out is not None:
            out.close()


def encode_related(
    payloads: Iterable[bytes], content_type: str = "application/dicom"
) -> tuple[bytes, str]:
    """A ``multipart/related`` body of ``payloads`` and its content type (for STOW-RS).

    Examples
    --------
    >>> body, ctype = encode_related([b"x"])
    >>> ctype.startswith('multipart/related; type="application/dicom"; boundary=')
    True
    """
    boundary = f"medlabel-{secrets.token_hex(16)}"
    pieces: list[bytes] = []
    for data in payloads:
        pieces.append(f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode("latin-1"))
        pieces.append(data)
        pieces.append(b"\r\n")
    pieces.append(f"--{boundary}--\r\n".encode("latin-1"))
    ctype = f'multipart/related; type="{content_type}"; boundary={boundary}'
    return b"".join(pieces), ctype
