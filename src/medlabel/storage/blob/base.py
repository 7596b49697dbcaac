"""The :class:`BlobStore` interface: put and get immutable bytes by their SHA-256."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from medlabel.core.errors import InvalidInputError, MedlabelError

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


@dataclass(frozen=True)
class BlobStat:
    """Size in bytes and time of the last write (seconds since the epoch) of a stored blob."""

    size: int
    modified: float


class BlobStoreError(MedlabelError):
    """The blob store cannot be reached or refused a request (HTTP 503)."""

    status_code = 503
    code = "blob_store_unavailable"


class BlobIntegrityError(BlobStoreError):
    """Bytes did not match their SHA-256 on the way to or from the store (HTTP 502): a
    corrupted transfer or a damaged object; nothing corrupt is stored or returned."""

    status_code = 502
    code = "blob_integrity"


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

    def stat(self, digest: str) -> BlobStat | None:
        """Size and last write time, or None if the blob is absent."""
        ...

    def iter_digests(self) -> Iterator[str]: ...

    def sync(self, digests: Iterable[str] | None = None) -> None:
        """Make blobs durable; call before committing rows that refer to them.

        ``digests``: just these blobs (cheap: what one transaction wrote); None: every
        blob written so far, by any process."""
        ...
