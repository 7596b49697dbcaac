"""The S3 blob store against a real S3-compatible server (SeaweedFS): settings and start-up
errors, multipart uploads, streaming reads, integrity checks, concurrent writers, and
the whole system (import, slices, annotation, export) with its blobs in a bucket.

The contract every blob store meets is tested in ``test_blob_store.py`` for S3 as well."""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import io
import json
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from medlabel.core.errors import ConfigurationError, MissingDependencyError
from medlabel.core.settings import Settings
from medlabel.security.roles import Role
from medlabel.server.app import create_app
from medlabel.services.context import Context, open_context
from medlabel.services.maintenance import collect_garbage
from medlabel.services.users import create_user
from medlabel.storage.blob import BlobIntegrityError, LocalBlobStore
from medlabel.storage.blob.factory import open_blob_store
from medlabel.storage.blob.s3 import MiB, S3BlobStore, S3Options
from tests.conftest import PASSWORD
from tests.support.require import free_port
from tests.support.seaweedfs import ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedFS

services = pytest.mark.services


def _s3_settings(tmp_path: Path, url: str, endpoint: str | None, **kw: Any) -> Settings:
    return Settings(
        home=tmp_path / "home",
        blob_url=url,
        s3_endpoint_url=endpoint,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
        **kw,
    )


def _uploads(server: SeaweedFS, store: S3BlobStore) -> list[str]:
    """Unfinished multipart uploads under the store's prefix."""
    got = server.client().list_multipart_uploads(Bucket=BUCKET, Prefix=store.options.prefix)
    return [u["Key"] for u in got.get("Uploads", [])]


class Chunks(io.RawIOBase):
    """``size`` pseudo-random bytes, produced as read; remembers the largest read."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self._left = size
        self._rng = np.random.default_rng(seed)
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        self.largest_read = max(self.largest_read, n)
        n = self._left if n < 0 else min(n, self._left)
        self._left -= n
        return self._rng.integers(0, 256, n, dtype=np.uint8).tobytes()


def _data(size: int, seed: int = 0) -> bytes:
    return Chunks(size, seed).read(size)


# -- options and start-up, no server needed --------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["s3:/bucket", "gs://bucket/x", "bucket/prefix", "s3://", "s3://B/x", "s3://ab",
     "s3://-bucket/x", "s3://bucket//x", "s3://bucket/a/../b", "s3://bucket/x?versionId=1"],
)  # fmt: skip
def test_malformed_blob_urls_are_refused_at_start_up(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigurationError, match="MEDLABEL_BLOB_URL / MEDLABEL_S3_"):
        open_blob_store(Settings(home=tmp_path, blob_url=url))  # refused before connecting


def test_options_are_validated() -> None:
    assert S3Options.from_url("s3://bucket").prefix == ""
    assert S3Options.from_url("s3://my.bucket-1/a/b/").prefix == "a/b"
    with pytest.raises(ConfigurationError, match="part size"):
        S3Options("bucket", part_size=MiB)
    with pytest.raises(ConfigurationError, match="concurrency"):
        S3Options("bucket", concurrency=0)
    with pytest.raises(ConfigurationError, match="both"):
        S3Options("bucket", access_key_id="x")
    assert "secret" not in repr(S3Options("bucket", access_key_id="k", secret_access_key="secret"))


def test_without_blob_url_blobs_stay_in_the_folder(tmp_path: Path) -> None:
    store = open_blob_store(Settings(home=tmp_path, blob_url=None))
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "blobs"


def test_missing_boto3_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(MissingDependencyError, match=r"medlabel\[s3\]"):
        open_blob_store(Settings(home=tmp_path, blob_url="s3://bucket/x"))


@pytest.mark.skipif(importlib.util.find_spec("boto3") is None, reason="needs boto3 (s3 extra)")
def test_an_unreachable_endpoint_fails_at_start_up(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = _s3_settings(tmp_path, "s3://bucket/x", endpoint)
    with pytest.raises(ConfigurationError, match="MEDLABEL_BLOB_URL=s3://bucket/x") as err:
        open_context(settings)
    assert endpoint in err.value.message


# -- against SeaweedFS -----------------------------------------------------------------------


@services
def test_a_missing_bucket_fails_at_start_up(tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    settings = _s3_settings(tmp_path, "s3://no-such-bucket/x", seaweedfs.endpoint_url)
    with pytest.raises(ConfigurationError, match="no-such-bucket"):
        open_blob_store(settings)
    ok = _s3_settings(tmp_path, f"s3://{BUCKET}/x", seaweedfs.endpoint_url)
    assert isinstance(open_blob_store(ok), S3BlobStore)


@services
def test_large_blobs_go_up_in_verified_parts(seaweedfs: SeaweedFS) -> None:
    store = seaweedfs.blob_store(part_size=5 * MiB, concurrency=2)
    parts: list[dict[str, Any]] = []
    store.client.meta.events.register(
        "before-call.s3.UploadPart", lambda params, **_: parts.append(params)
    )
    size = 12 * MiB + 3
    source = Chunks(size)
    ref = store.put_stream(source)  # type: ignore[arg-type]
    data = _data(size)
    assert ref.digest == hashlib.sha256(data).hexdigest() and ref.size == size and ref.created
    assert source.largest_read <= MiB  # the stream is read in bounded chunks
    assert sorted(p["body"].getbuffer().nbytes for p in parts) == [2 * MiB + 3, 5 * MiB, 5 * MiB]
    assert all("x-amz-checksum-sha256" in p["headers"] for p in parts)
    head = seaweedfs.client().head_object(
        Bucket=BUCKET, Key=store._key(ref.digest), ChecksumMode="ENABLED"
    )
    assert head["ContentLength"] == size and head["ChecksumSHA256"].endswith("-3")
    assert store.read_bytes(ref.digest) == data and _uploads(seaweedfs, store) == []
    # the same content again: found by its digest, not uploaded again
    parts.clear()
    assert not store.put_stream(io.BytesIO(data)).created and parts == []
    # put_bytes of a large blob takes the same way
    ref2 = store.put_bytes(data[: 6 * MiB])
    assert ref2.created and len(parts) == 2 and store.read_bytes(ref2.digest) == data[: 6 * MiB]


@services
def test_large_blobs_are_read_as_streams(seaweedfs: SeaweedFS) -> None:
    store = seaweedfs.blob_store()
    size = 40 * MiB + 5
    digest = store.put_stream(Chunks(size, seed=1)).digest  # type: ignore[arg-type]
    gets: list[dict[str, Any]] = []
    store.client.meta.events.register(
        "before-call.s3.GetObject", lambda params, **_: gets.append(params)
    )
    h = hashlib.sha256()
    with store.open(digest) as fh:
        head = fh.read(10)
        assert len(head) == 10
        h.update(head)
        while chunk := fh.read(MiB):
            assert len(chunk) <= MiB
            h.update(chunk)
    assert h.hexdigest() == digest and len(gets) == 1  # one GET, read as it streams
    with store.open(digest) as fh:
        fh.seek(size - 5)
        assert fh.read() == _data(size, seed=1)[-5:]
    assert gets[-1]["headers"]["Range"] == f"bytes={size - 5}-"


@services
def test_a_dropped_connection_is_resumed_where_it_stopped(seaweedfs: SeaweedFS) -> None:
    store = seaweedfs.blob_store()
    data = _data(3 * MiB, seed=2)
    digest = store.put_bytes(data).digest
    with store.open(digest) as fh:
        first = fh.read(MiB)
        fh.raw._body.close()  # type: ignore[attr-defined]  # the connection drops
        assert first + fh.read() == data


@services
@pytest.mark.parametrize("size", [1000, 11 * MiB])
def test_bytes_corrupted_on_the_way_are_refused(seaweedfs: SeaweedFS, size: int) -> None:
    store = seaweedfs.blob_store(part_size=5 * MiB)

    def flip_a_bit(request: Any, **_: Any) -> None:
        data = bytearray(request.body.read())
        data[0] ^= 1
        request.body = io.BytesIO(bytes(data))

    for op in ("PutObject", "UploadPart"):
        store.client.meta.events.register(f"before-send.s3.{op}", flip_a_bit)
    data = _data(size, seed=3)
    with pytest.raises(BlobIntegrityError, match="do not match"):
        store.put_stream(io.BytesIO(data))
    digest = hashlib.sha256(data).hexdigest()
    assert not store.exists(digest) and list(store.iter_digests()) == []
    assert _uploads(seaweedfs, store) == []  # the multipart upload was aborted


@services
def test_a_damaged_object_is_never_returned_as_the_blob(seaweedfs: SeaweedFS) -> None:
    store = seaweedfs.blob_store()
    data = _data(2 * MiB, seed=4)
    digest = hashlib.sha256(data).hexdigest()
    damaged = bytearray(data)
    damaged[-1] ^= 0xFF  # e.g. written around the store, or rotted on a disk
    seaweedfs.client().put_object(Bucket=BUCKET, Key=store._key(digest), Body=bytes(damaged))
    with pytest.raises(BlobIntegrityError, match="damaged"):
        store.read_bytes(digest)
    with store.open(digest) as fh, pytest.raises(BlobIntegrityError):
        while fh.read(256 * 1024):
            pass
    with store.open(digest) as fh:  # a part of it can be read (it is not checked)
        assert fh.read(100) == data[:100]


@services
def test_concurrent_puts_of_the_same_blob(seaweedfs: SeaweedFS) -> None:
    store = seaweedfs.blob_store(part_size=5 * MiB)
    small, large = _data(100_000, seed=5), _data(11 * MiB, seed=6)
    start = threading.Barrier(8)

    def put(i: int) -> tuple[str, bool]:
        data = small if i % 2 else large
        start.wait()
        ref = store.put_bytes(data) if i % 4 < 2 else store.put_stream(io.BytesIO(data))
        return ref.digest, ref.created

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(put, range(8)))
    for data in (small, large):
        digest = hashlib.sha256(data).hexdigest()
        created = [c for d, c in results if d == digest]
        # at least one writer made it (exactly one where the server checks If-None-Match
        # atomically, as AWS does; SeaweedFS checks before it writes)
        assert len(created) == 4 and sum(created) >= 1
        assert store.read_bytes(digest) == data
    assert len(list(store.iter_digests())) == 2 and _uploads(seaweedfs, store) == []


@services
def test_servers_without_conditional_writes_are_written_to_anyway(seaweedfs: SeaweedFS) -> None:
    refused: list[str] = []

    def no_conditions(params: dict[str, Any], model: Any, **_: Any) -> Any:
        if "If-None-Match" not in params["headers"]:
            return None
        refused.append(model.name)  # as some S3-compatible servers answer
        error = {"Code": "NotImplemented", "Message": "If-None-Match is not implemented"}
        return SimpleNamespace(status_code=501), {"Error": error}

    for size in (1000, 6 * MiB):
        store = seaweedfs.blob_store(part_size=5 * MiB)
        for op in ("PutObject", "CompleteMultipartUpload"):
            store.client.meta.events.register(f"before-call.s3.{op}", no_conditions)
        data = _data(size, seed=7)
        ref = store.put_bytes(data)
        assert ref.created and store.read_bytes(ref.digest) == data
        assert not store.put_stream(io.BytesIO(data)).created
    assert refused == ["PutObject", "CompleteMultipartUpload"]  # asked once per store


@services
def test_stale_multipart_uploads_are_aborted(seaweedfs: SeaweedFS) -> None:
    store = seaweedfs.blob_store()
    key = store._key("a" * 64)
    seaweedfs.client().create_multipart_upload(Bucket=BUCKET, Key=key)  # a killed process's
    assert store.abort_stale_uploads(older_than_seconds=3600) == 0
    assert store.abort_stale_uploads(older_than_seconds=0) == 1 and _uploads(seaweedfs, store) == []


# -- the whole system on S3 ------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path, seaweedfs: SeaweedFS) -> Settings:
    """This module's app keeps its blobs in SeaweedFS (import workers: 2 processes)."""
    return _s3_settings(
        tmp_path,
        f"s3://{BUCKET}/{seaweedfs.new_prefix()}",
        seaweedfs.endpoint_url,
        login_max_failures=5,
        preload_engines=[],
        import_workers=2,
    )


def _annotate_and_export(client: TestClient, series: Path) -> dict[str, Any]:
    """Import the series (in worker processes), render a slice, save a mask, export NIfTI."""
    p = client.post("/api/projects", json={"name": "On S3"}).json()
    client.post(f"/api/projects/{p['id']}/labels", json=[{"name": "lesion", "kind": "mask"}])
    files = [("files", (f.name, f.read_bytes(), "application/octet-stream"))
             for f in sorted(series.iterdir())]  # fmt: skip
    r = client.post(f"/api/projects/{p['id']}/imports", files=files)
    assert r.status_code == 201, r.text
    (image_id,) = r.json()["image_ids"]
    shape = client.get(f"/api/images/{image_id}").json()["shape"]
    png = client.get(f"/api/images/{image_id}/slice.png?index=2")
    assert png.status_code == 200, png.text
    header = {
        row["keyword"]: row for row in client.get(f"/api/images/{image_id}/dicom-header").json()
    }
    mask = np.zeros(shape, np.uint8)
    mask[2, 4:9, 3:12] = 1
    body = {"mask": {"encoding": "raw-gzip",
                     "data": base64.b64encode(gzip.compress(mask.tobytes())).decode()}}  # fmt: skip
    r = client.post(f"/api/images/{image_id}/annotations", json=body)
    assert r.status_code == 201, r.text
    r = client.post(f"/api/projects/{p['id']}/exports", json={"format": "nifti"})
    assert r.status_code == 201, r.text
    z = zipfile.ZipFile(io.BytesIO(client.get(f"/api/exports/{r.json()['id']}/download").content))
    (label_name,) = [n for n in z.namelist() if n.startswith("labels/")]
    labels = nib.Nifti1Image.from_bytes(gzip.decompress(z.read(label_name)))
    image = nib.Nifti1Image.from_bytes(
        gzip.decompress(z.read(label_name.replace("labels/", "images/")))
    )
    return {
        "shape": shape,
        "slice": np.asarray(PILImage.open(io.BytesIO(png.content))),
        "deidentified": header["PatientIdentityRemoved"]["value"],
        "labels": np.asarray(labels.dataobj),
        "label_affine": labels.affine,
        "image": np.asarray(image.dataobj),
        "image_affine": image.affine,
        "manifest": json.loads(z.read("manifest.json")),
        "mask_voxels": int(mask.sum()),
    }


@pytest.fixture
def local_admin(tmp_path: Path, new_database: Callable[[], str | None]) -> Iterator[TestClient]:
    """The same system with its blobs in a local folder, for comparison."""
    settings = Settings(
        home=tmp_path / "local", database_url=new_database(), preload_engines=[], import_workers=1
    )
    ctx = open_context(settings)
    create_user(ctx, "admin", PASSWORD, Role.ADMIN)
    with TestClient(create_app(ctx.settings, ctx=ctx), base_url="http://testserver") as client:
        r = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        assert r.status_code == 200
        yield client
    ctx.close()


@services
@pytest.mark.slow
def test_import_view_annotate_export_with_blobs_in_s3(
    admin: TestClient,
    local_admin: TestClient,
    ctx: Context,
    ct_series: Path,
    seaweedfs: SeaweedFS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from medlabel.services.imports import staging

    monkeypatch.setattr(staging, "PARALLEL_FROM", 1)  # 5 files: still use the worker processes
    assert isinstance(ctx.blobs, S3BlobStore)
    on_s3 = _annotate_and_export(admin, ct_series)
    assert not ctx.settings.resolved_blob_dir.exists()  # nothing went to the local folder
    stored = set(ctx.blobs.iter_digests())
    assert len(stored) >= 5 + 3  # 5 de-identified instances, pixels, thumbnail, mask, zip
    assert on_s3["shape"] == [5, 16, 16] and on_s3["slice"].shape == (16, 16)
    assert on_s3["deidentified"] == "YES"
    assert int(on_s3["labels"].sum()) == on_s3["mask_voxels"]
    assert np.allclose(on_s3["label_affine"], on_s3["image_affine"])
    # the same as with the local store, voxel for voxel
    local = _annotate_and_export(local_admin, ct_series)
    for key in ("slice", "labels", "image", "label_affine", "image_affine"):
        assert np.array_equal(on_s3[key], local[key]), key
    # garbage collection on S3: referenced blobs stay; orphans and the unfinished upload of
    # a killed process go once they are old enough
    orphan = ctx.blobs.put_bytes(b"left by an interrupted import").digest
    seaweedfs.client().create_multipart_upload(Bucket=BUCKET, Key=ctx.blobs._key("b" * 64))
    assert collect_garbage(ctx, min_age_seconds=3600).removed == 0
    assert _uploads(seaweedfs, ctx.blobs) != []
    assert collect_garbage(ctx, min_age_seconds=0).removed == 1
    assert set(ctx.blobs.iter_digests()) == stored and orphan not in stored
    assert _uploads(seaweedfs, ctx.blobs) == []
