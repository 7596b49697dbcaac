"""Blob store on a local folder: ``<root>/sha256/ab/cd/<digest>``."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from medlabel.core.errors import NotFoundError
from medlabel.storage.blob.base import BlobRef, BlobStat, check_digest

_CHUNK = 1024 * 1024


class LocalBlobStore:
    """Content-addressed files on local disk, written atomically (temp file + rename).

    Writes are not fsynced one by one (that would cost milliseconds per DICOM instance);
    callers call :meth:`sync` once before committing database rows that refer to them.
    Several processes may write to one store (an import's worker processes).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._objects = self.root / "sha256"
        self._tmp = self.root / "tmp"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._dirs: set[str] = set()  # fan-out folders known to exist
        self._counter = itertools.count()

    def _path(self, digest: str) -> Path:
        check_digest(digest)
        return self._objects / digest[:2] / digest[2:4] / digest

    def put_bytes(self, data: bytes) -> BlobRef:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.exists():
            return BlobRef(digest, len(data), created=False)
        tmp = self._temp_path()
        try:
            with tmp.open("wb") as fh:
                fh.write(data)
            self._commit(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return BlobRef(digest, len(data), created=True)

    def put_stream(self, stream: BinaryIO) -> BlobRef:
        h = hashlib.sha256()
        size = 0
        tmp = self._temp_path()
        try:
            with tmp.open("wb") as fh:
                while chunk := stream.read(_CHUNK):
                    h.update(chunk)
                    fh.write(chunk)
                    size += len(chunk)
            digest = h.hexdigest()
            path = self._path(digest)
            if path.exists():
                return BlobRef(digest, size, created=False)
            self._commit(tmp, path)
            return BlobRef(digest, size, created=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def __reduce__(self) -> tuple[Callable[[Path], LocalBlobStore], tuple[Path]]:
        # handed to import worker processes: only the folder travels, and each process
        # keeps one store per folder (with its cache of existing fan-out folders)
        return (_store_in_process, (self.root,))

    def _temp_path(self) -> Path:
        # unique per process and call, without mkstemp's random-name retries
        return self._tmp / f"{os.getpid()}-{threading.get_ident()}-{next(self._counter)}"

    def _commit(self, tmp: Path, path: Path) -> None:
        folder = path.parent.name
        key = f"{path.parent.parent.name}/{folder}"
        if key not in self._dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(key)
        os.chmod(tmp, 0o444)
        try:
            os.replace(tmp, path)
        except FileNotFoundError:  # the folder went away since it was cached
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)

    def sync(self, digests: Iterable[str] | None = None) -> None:
        """Make blobs durable: ``digests`` by an fsync of each file and of its folder
        (only what a transaction wrote, so a save does not wait for the whole disk);
        None: every blob written so far, by any process (one filesystem sync)."""
        if digests is None:
            os.sync()
            return
        folders: set[Path] = set()
        for digest in digests:
            path = self._path(digest)
            _fsync(path, os.O_RDONLY)
            folders.add(path.parent)
        for folder in folders:
            _fsync(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))

    def open(self, digest: str) -> BinaryIO:
        try:
            return self._path(digest).open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} is missing from the store") from None

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as fh:
            return fh.read()

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(digest).unlink()

    def local_path(self, digest: str) -> Path | None:
        path = self._path(digest)
        return path if path.exists() else None

    def stat(self, digest: str) -> BlobStat | None:
        try:
            st = self._path(digest).stat()
        except FileNotFoundError:
            return None
        return BlobStat(st.st_size, st.st_mtime)

    def iter_digests(self) -> Iterator[str]:
        for path in self._objects.glob("*/*/*"):
            if path.is_file():
                yield path.name


_STORES: dict[Path, LocalBlobStore] = {}


def _store_in_process(root: Path) -> LocalBlobStore:
    """This process's store on ``root`` (made on first use)."""
    store = _STORES.get(root)
    if store is None:
        if len(_STORES) > 16:
            _STORES.clear()
        store = _STORES[root] = LocalBlobStore(root)
    return store


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
