"""The :class:`BlobStore` interface: put and get immutable bytes by their SHA-256."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from medlabel.core.errors import InvalidInputError

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a lowercase hex SHA-256, else raise."""
    if not _DIGEST.match(digest):
        raise InvalidInputError(f"not a SHA-256 blob digest: {digest[:80]!r}")
    return digest


@dataclass(frozen=True)
class BlobRef:
    """Where a put landed: the digest, the size in bytes and whether it was new."""

    digest: str
    size: int
    created: bool


@runtime_checkable
class BlobStore(Protocol):
    """Immutable, content-addressed storage. Writes are atomic: a blob is either
    complete under its digest or absent."""

    def put_bytes(self, data: bytes) -> BlobRef: ...

    def put_stream(self, stream: BinaryIO) -> BlobRef: ...

    def open(self, digest: str) -> BinaryIO: ...

    def read_bytes(self, digest: str) -> bytes: ...

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None: ...

    def local_path(self, digest: str) -> Path | None:
        """A file path for memory-mapping, when the store is on local disk."""
        ...

    def iter_digests(self) -> Iterator[str]: ...

    def sync(self) -> None:
        """Make all blobs written so far durable; call before committing rows that refer
        to them."""
        ...
