"""The local content-addressed blob store."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.storage.blob import BlobStore, LocalBlobStore


def test_put_get_is_content_addressed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    assert isinstance(store, BlobStore)
    ref = store.put_bytes(b"hello")
    assert ref.digest == hashlib.sha256(b"hello").hexdigest() and ref.created and ref.size == 5
    again = store.put_stream(io.BytesIO(b"hello"))
    assert again.digest == ref.digest and not again.created
    assert store.read_bytes(ref.digest) == b"hello"
    assert list(store.iter_digests()) == [ref.digest]
    path = store.local_path(ref.digest)
    assert path is not None and path.stat().st_mode & 0o222 == 0  # read-only
    store.sync()
    store.delete(ref.digest)
    assert not store.exists(ref.digest) and store.local_path(ref.digest) is None


def test_no_temp_files_are_left(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    for i in range(5):
        store.put_stream(io.BytesIO(bytes([i]) * 3_000_000))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_failing_stream_leaves_nothing(tmp_path: Path) -> None:
    class Broken(io.RawIOBase):
        calls = 0

        def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("connection reset")
            return b"x" * 1000

    store = LocalBlobStore(tmp_path)
    with pytest.raises(OSError):
        store.put_stream(Broken())  # type: ignore[arg-type]
    assert list(store.iter_digests()) == [] and list((tmp_path / "tmp").iterdir()) == []


def test_bad_and_missing_digests(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(InvalidInputError):
        store.read_bytes("../../etc/passwd")
    with pytest.raises(NotFoundError):
        store.read_bytes("0" * 64)
