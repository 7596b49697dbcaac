"""The content-addressed blob stores: one contract, run against the local folder and against
S3 (a real SeaweedFS server, see :mod:`tests.support.seaweedfs`)."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.storage.blob import BlobStore, LocalBlobStore


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.services)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "blobs")
    else:
        yield request.getfixturevalue("seaweedfs").blob_store()


class Broken(io.RawIOBase):
    """A stream whose connection drops after two reads."""

    calls = 0

    def read(self, n: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise OSError("connection reset")
        return b"x" * 1000


# -- the contract, for every store -----------------------------------------------------------


def test_bad_and_missing_digests(store: BlobStore) -> None:
    for bad in ("../../etc/passwd", "A" * 64, "0" * 63, ""):
        with pytest.raises(InvalidInputError):
            store.read_bytes(bad)
        with pytest.raises(InvalidInputError):
            store.exists(bad)
    missing = "0" * 64
    with pytest.raises(NotFoundError):
        store.read_bytes(missing)
    with pytest.raises(NotFoundError):
        store.open(missing)
    assert not store.exists(missing) and store.stat(missing) is None
    store.delete(missing)  # deleting what is absent is fine


def test_the_empty_blob(store: BlobStore) -> None:
    ref = store.put_stream(io.BytesIO(b""))
    assert ref.digest == hashlib.sha256(b"").hexdigest() and ref.size == 0 and ref.created
    assert store.read_bytes(ref.digest) == b""
    with store.open(ref.digest) as fh:
        assert fh.read(10) == b""


def test_put_get_is_content_addressed(store: BlobStore) -> None:
    assert isinstance(store, BlobStore)
    ref = store.put_bytes(b"hello")
    assert ref.digest == hashlib.sha256(b"hello").hexdigest() and ref.created and ref.size == 5
    again = store.put_stream(io.BytesIO(b"hello"))
    assert again.digest == ref.digest and not again.created and again.size == 5
    assert not store.put_bytes(b"hello").created
    assert store.read_bytes(ref.digest) == b"hello" and store.exists(ref.digest)
    assert list(store.iter_digests()) == [ref.digest]
    stat = store.stat(ref.digest)
    assert stat is not None and stat.size == 5 and abs(stat.modified - time.time()) < 300
    store.sync()
    store.delete(ref.digest)
    assert not store.exists(ref.digest) and store.local_path(ref.digest) is None
    assert list(store.iter_digests()) == []


def test_open_streams_reads_and_seeks(store: BlobStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = store.put_stream(io.BytesIO(data)).digest
    with store.open(digest) as fh:
        assert fh.read(10) == data[:10]
        assert fh.read(1024 * 1024) == data[10 : 10 + 1024 * 1024]
        fh.seek(len(data) - 7)
        assert fh.read() == data[-7:]
        fh.seek(5)
        assert fh.tell() == 5 and fh.read(3) == data[5:8]
        fh.seek(0)
        assert fh.read() == data


def test_many_blobs_are_listed(store: BlobStore) -> None:
    digests = {store.put_bytes(str(i).encode()).digest for i in range(25)}
    assert set(store.iter_digests()) == digests


def test_a_failing_stream_leaves_nothing(store: BlobStore) -> None:
    with pytest.raises(OSError, match="connection reset"):
        store.put_stream(Broken())  # type: ignore[arg-type]
    assert list(store.iter_digests()) == []


def test_the_store_travels_to_other_processes(store: BlobStore) -> None:
    ref = store.put_bytes(b"sent to a worker")
    clone = pickle.loads(pickle.dumps(store))
    assert type(clone) is type(store) and clone.read_bytes(ref.digest) == b"sent to a worker"
    assert not clone.put_bytes(b"sent to a worker").created


# -- the local folder ------------------------------------------------------------------------


def test_sync_of_chosen_blobs_and_of_all(store: BlobStore) -> None:
    refs = [store.put_bytes(bytes([i]) * 1000) for i in range(3)]
    store.sync([r.digest for r in refs[:2]])  # what one transaction wrote
    store.sync([])
    store.sync()  # everything
    assert all(store.read_bytes(r.digest) == bytes([i]) * 1000 for i, r in enumerate(refs))


def test_local_blobs_are_read_only_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    ref = store.put_bytes(b"hello")
    path = store.local_path(ref.digest)
    assert path is not None and path.stat().st_mode & 0o222 == 0  # read-only
    store.delete(ref.digest)
    assert store.local_path(ref.digest) is None


def test_no_temp_files_are_left(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    for i in range(5):
        store.put_stream(io.BytesIO(bytes([i]) * 3_000_000))
    with pytest.raises(OSError):
        store.put_stream(Broken())  # type: ignore[arg-type]
    assert list((tmp_path / "tmp").iterdir()) == []
