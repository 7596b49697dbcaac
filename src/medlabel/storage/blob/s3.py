"""Blob store on S3-compatible object storage: ``s3://<bucket>/<prefix>/sha256/ab/cd/<digest>``.

How a write stays atomic and verified
-------------------------------------
The key of a blob is its SHA-256, so it must be known before the upload starts.
:meth:`S3BlobStore.put_stream` therefore first copies the stream into a spooled temporary
file (in memory up to one part, on local disk beyond), hashing it on the way; then

* a blob that is already stored is not uploaded again (re-imports cost one HEAD request);
* a blob of at most one part is sent in one PUT whose ``x-amz-checksum-sha256`` header *is*
  its digest: the server refuses the object unless the bytes it received hash to the key;
* a larger blob is sent as a multipart upload of bounded parts (several in flight), each
  with its own SHA-256 checksum the server verifies; the bytes are hashed again as they are
  sent and the upload is completed only if they still hash to the key, and the composite
  checksum the server reports must match the parts sent. The object appears when the
  upload completes, all at once; on any error the upload is aborted.

Writes are conditional (``If-None-Match: *``): a blob another process stored meanwhile is
not written again, and where the server checks the condition atomically (AWS) exactly one
of several concurrent writers of a new blob reports ``created`` (SeaweedFS checks before
it writes, so several may; callers treat ``created`` as "maybe mine" and check references
before deleting).

The alternative, an upload to a temporary key and a server-side copy to the digest, leaves
the temporary object behind on a crash, doubles the server's writes and uploads
duplicates in full before finding out. Killed processes can leave unfinished multipart
uploads (invisible, but they take space): :meth:`S3BlobStore.abort_stale_uploads`, run
by the garbage collection, aborts them.

Reads are verified too: a blob read to its end must hash to its digest.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import os
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

from medlabel.core.errors import ConfigurationError, NotFoundError
from medlabel.core.optional import require
from medlabel.storage.blob.base import (
    BlobIntegrityError,
    BlobRef,
    BlobStat,
    BlobStoreError,
    check_digest,
)

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: S3 limits: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10 000 of them
_MIN_PART = 5 * MiB
_MAX_PART = 5 * 1024 * MiB
_MAX_PARTS = 10_000
_CHUNK = MiB
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_INTEGRITY = {
    "BadDigest",
    "InvalidDigest",
    "XAmzContentSHA256Mismatch",
    "XAmzContentChecksumMismatch",
    "InvalidChecksum",
}
_EXISTS = {"PreconditionFailed", "412"}
_READ_ATTEMPTS = 3
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Options:
    """Where the blobs are and how to reach them.

    Parameters
    ----------
    bucket
        An existing bucket.
    prefix
        Folder inside the bucket (no leading or trailing ``/``), may be empty.
    endpoint_url, region, access_key_id, secret_access_key
        None: boto3's usual chain (``AWS_*`` variables, ``~/.aws``, instance roles).
    part_size
        Bytes per multipart part (5 MiB to 5 GiB); blobs up to this size take one PUT.
    concurrency
        Parts in flight per upload; an upload holds at most ``part_size * (concurrency +
        1)`` bytes in memory.
    spool_dir
        Where streams larger than one part are spooled before upload (None: the system's
        temporary folder).

    Raises
    ------
    ConfigurationError
        On an invalid bucket name, prefix, part size or half-given credentials.
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    part_size: int = 8 * MiB
    concurrency: int = 4
    spool_dir: Path | None = None

    def __post_init__(self) -> None:
        b = self.bucket
        if not _BUCKET.match(b):
            raise ConfigurationError(
                f"{b!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, '-' "
                "and '.', starting and ending with a letter or digit)"
            )
        p = self.prefix
        if p.startswith("/") or p.endswith("/") or "//" in p or ".." in p.split("/"):
            raise ConfigurationError(f"invalid S3 key prefix {p!r}: give a/b, not /a/b/ or a/../b")
        if not _MIN_PART <= self.part_size <= _MAX_PART:
            raise ConfigurationError(
                f"S3 part size must be 5 MiB to 5 GiB, got {self.part_size} bytes"
            )
        if self.concurrency < 1:
            raise ConfigurationError(f"S3 upload concurrency must be >= 1, got {self.concurrency}")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigurationError(
                "give both the S3 access key id and the secret access key, or neither (then "
                "boto3 finds credentials in AWS_* variables, ~/.aws or the instance role)"
            )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> S3Options:
        """Parse ``s3://bucket[/prefix]``; ``kwargs`` are the other fields.

        Examples
        --------
        >>> S3Options.from_url("s3://scans/medlabel/blobs").prefix
        'medlabel/blobs'
        """
        scheme, sep, rest = url.partition("://")
        if scheme.lower() != "s3" or not sep:
            raise ConfigurationError(
                f"object storage URL must look like s3://bucket/prefix: {url!r}"
            )
        if "?" in rest or "#" in rest:
            raise ConfigurationError(
                f"object storage URL may not have a query or fragment: {url!r}"
            )
        bucket, _, prefix = rest.partition("/")
        return cls(bucket=bucket, prefix=prefix.rstrip("/"), **kwargs)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class S3BlobStore:
    """Content-addressed objects in an S3 bucket (AWS, SeaweedFS, MinIO, Ceph, ...).

    Safe to share between threads (one boto3 client, which is thread-safe) and to send to
    worker processes (only the :class:`S3Options` travel; each process makes its own
    client). There is no local file: :meth:`local_path` is always None.

    Raises
    ------
    MissingDependencyError
        If boto3 (the ``s3`` extra) is not installed.
    """

    def __init__(self, options: S3Options) -> None:
        self.options = options
        self._boto3 = require("boto3", extra="s3", feature="S3 object storage")
        self._exc: ModuleType = require("botocore.exceptions", extra="s3", feature="S3")
        self._config: ModuleType = require("botocore.config", extra="s3", feature="S3")
        self._bucket = options.bucket
        self._root = f"{options.prefix}/sha256/" if options.prefix else "sha256/"
        self._lock = threading.Lock()
        self._client: Any = None
        self._client_pid = 0
        self._conditional = True  # If-None-Match on writes, until the server refuses it

    def __reduce__(self) -> tuple[type[S3BlobStore], tuple[S3Options]]:
        return (S3BlobStore, (self.options,))

    def __repr__(self) -> str:
        where = f" at {self.options.endpoint_url}" if self.options.endpoint_url else ""
        return f"S3BlobStore({self.options.url}{where})"

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client of this process (made on first use, again after a fork)."""
        pid = os.getpid()
        if self._client is None or self._client_pid != pid:
            with self._lock:
                if self._client is None or self._client_pid != pid:
                    self._client = self._make_client()
                    self._client_pid = pid
        return self._client

    def _make_client(self) -> Any:
        o = self.options
        session = self._boto3.session.Session(
            aws_access_key_id=o.access_key_id,
            aws_secret_access_key=o.secret_access_key,
            region_name=o.region,
        )
        config = self._config.Config(
            # path-style keys: servers other than AWS rarely have wildcard DNS for buckets
            s3={"addressing_style": "path"} if o.endpoint_url else None,
            retries={"mode": "standard", "max_attempts": 5},
            # one client serves every thread of the process (server threads, upload parts)
            max_pool_connections=max(50, 4 * o.concurrency),
            connect_timeout=10,
            read_timeout=120,
            # the SHA-256 checksums are sent explicitly, as plain headers (some servers do
            # not understand botocore's default CRC trailers)
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return session.client("s3", endpoint_url=o.endpoint_url, config=config)

    def _key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self._root}{digest[:2]}/{digest[2:4]}/{digest}"

    @staticmethod
    def _code(exc: Any) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    @contextlib.contextmanager
    def _translate(self, doing: str, digest: str | None = None) -> Iterator[None]:
        """botocore errors → the project's errors, with what was being done and where."""
        try:
            yield
        except self._exc.ClientError as exc:
            code = self._code(exc)
            if code in _NOT_FOUND and digest is not None:
                raise NotFoundError(f"blob {digest} is missing from the store") from None
            if code in _INTEGRITY:
                raise BlobIntegrityError(
                    f"{doing}: the object store received bytes that do not match their "
                    f"SHA-256 ({code}); nothing was stored"
                ) from exc
            message = exc.response.get("Error", {}).get("Message", "")
            raise BlobStoreError(
                f"{doing}: {self.options.url} answered {code or 'an error'}: {message}"
            ) from exc
        except self._exc.BotoCoreError as exc:
            where = self.options.endpoint_url or "AWS S3"
            raise BlobStoreError(
                f"{doing}: cannot use {self.options.url} at {where}: {exc}"
            ) from exc

    def check(self) -> None:
        """Raise :class:`BlobStoreError` unless the bucket exists and answers."""
        with self._translate(f"opening bucket {self._bucket!r}"):
            self.client.head_bucket(Bucket=self._bucket)

    # -- writing ----------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> BlobRef:
        raw = hashlib.sha256(data).digest()
        digest = raw.hex()
        if self.exists(digest):
            return BlobRef(digest, len(data), created=False)
        key = self._key(digest)
        if len(data) <= self.options.part_size:
            created = self._put_object(key, data, raw)
        else:
            created = self._put_multipart(key, io.BytesIO(data), len(data), raw)
        return BlobRef(digest, len(data), created=created)

    def put_stream(self, stream: BinaryIO) -> BlobRef:
        h = hashlib.sha256()
        size = 0
        spool_dir = self.options.spool_dir
        folder = str(spool_dir) if spool_dir is not None and spool_dir.is_dir() else None
        with tempfile.SpooledTemporaryFile(max_size=self.options.part_size, dir=folder) as spool:
            while chunk := stream.read(_CHUNK):
                h.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            digest = h.hexdigest()
            if self.exists(digest):
                return BlobRef(digest, size, created=False)
            spool.seek(0)
            created = self._upload(self._key(digest), spool, size, h.digest())  # type: ignore[arg-type]
        return BlobRef(digest, size, created=created)

    def _upload(self, key: str, source: BinaryIO, size: int, raw: bytes) -> bool:
        """Store ``size`` bytes from ``source`` (which hash to ``raw``) under ``key``;
        False if the object was there already."""
        if size <= self.options.part_size:
            return self._put_object(key, source.read(), raw)
        return self._put_multipart(key, source, size, raw)

    def _if_none_match(self) -> dict[str, str]:
        return {"IfNoneMatch": "*"} if self._conditional else {}

    def _unconditional(self, exc: Any) -> bool:
        """True (and no more conditional writes) if the server refused ``If-None-Match``
        as unsupported; the write is then retried without it (the same bytes under the
        same key, so an overwrite is harmless)."""
        if self._conditional and self._code(exc) in ("NotImplemented", "501"):
            log.info("%s does not support conditional writes; writing unconditionally", self)
            self._conditional = False
            return True
        return False

    def _put_object(self, key: str, data: bytes, raw: bytes) -> bool:
        doing = f"storing blob {raw.hex()}"
        for attempt in range(5):
            with self._translate(doing):
                try:
                    self.client.put_object(
                        Bucket=self._bucket,
                        Key=key,
                        Body=data,
                        ChecksumSHA256=_b64(raw),
                        ContentType="application/octet-stream",
                        **self._if_none_match(),
                    )
                    return True
                except self._exc.ClientError as exc:
                    code = self._code(exc)
                    if code in _EXISTS:
                        return False
                    if self._unconditional(exc):
                        continue
                    if code != "ConditionalRequestConflict":
                        raise
            # another conditional write of this key was in flight: see how it ended
            if self._head(key) is not None:
                return False
            time.sleep(0.05 * (attempt + 1))
        raise BlobStoreError(f"{doing}: concurrent writes of the same key kept conflicting")

    def _put_multipart(self, key: str, source: BinaryIO, size: int, raw: bytes) -> bool:
        o = self.options
        part_size = max(o.part_size, -(-size // _MAX_PARTS))
        doing = f"storing blob {raw.hex()} ({size} bytes in parts of {part_size})"
        s3 = self.client
        with self._translate(doing):
            upload_id = s3.create_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                ChecksumAlgorithm="SHA256",
                ContentType="application/octet-stream",
            )["UploadId"]
        try:
            with self._translate(doing):
                parts, sent = self._send_parts(key, upload_id, source, part_size)
                if sent != raw:
                    raise BlobIntegrityError(
                        f"{doing}: the spooled copy no longer hashes to the blob's digest "
                        "(local disk error?); nothing was stored"
                    )
                composite = hashlib.sha256(b"".join(d for _, d in parts)).digest()
                complete = {
                    "Bucket": self._bucket,
                    "Key": key,
                    "UploadId": upload_id,
                    "MultipartUpload": {"Parts": [p for p, _ in parts]},
                }
                try:
                    done = s3.complete_multipart_upload(**complete, **self._if_none_match())
                except self._exc.ClientError as exc:
                    if self._code(exc) in _EXISTS:  # a concurrent put of the same blob won
                        self._abort(key, upload_id)
                        return False
                    if not self._unconditional(exc):
                        raise
                    done = s3.complete_multipart_upload(**complete)
        except BaseException:
            self._abort(key, upload_id)
            raise
        reported = str(done.get("ChecksumSHA256") or "")
        if reported and reported.split("-")[0] != _b64(composite):
            with contextlib.suppress(Exception):
                s3.delete_object(Bucket=self._bucket, Key=key)
            raise BlobIntegrityError(
                f"{doing}: the store's checksum of the assembled parts ({reported}) differs "
                "from the parts sent; the object was removed"
            )
        return True

    def _send_parts(
        self, key: str, upload_id: str, source: BinaryIO, part_size: int
    ) -> tuple[list[tuple[dict[str, Any], bytes]], bytes]:
        """Upload ``source`` in parts, ``concurrency`` at a time. Returns the parts (for
        completing the upload, with their raw SHA-256) and the SHA-256 of all bytes sent."""
        whole = hashlib.sha256()
        parts: list[tuple[dict[str, Any], bytes]] = []
        concurrency = self.options.concurrency
        with ThreadPoolExecutor(concurrency, thread_name_prefix="s3-part") as pool:
            pending: deque[Future[tuple[dict[str, Any], bytes]]] = deque()
            try:
                number = 0
                while chunk := source.read(part_size):
                    whole.update(chunk)
                    number += 1
                    if len(pending) >= concurrency:
                        parts.append(pending.popleft().result())
                    pending.append(pool.submit(self._send_part, key, upload_id, number, chunk))
                while pending:
                    parts.append(pending.popleft().result())
            finally:
                for f in pending:
                    f.cancel()
        return parts, whole.digest()

    def _send_part(
        self, key: str, upload_id: str, number: int, chunk: bytes
    ) -> tuple[dict[str, Any], bytes]:
        raw = hashlib.sha256(chunk).digest()
        checksum = _b64(raw)
        r = self.client.upload_part(
            Bucket=self._bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=chunk,
            ChecksumSHA256=checksum,
        )
        echoed = r.get("ChecksumSHA256")
        if echoed and echoed != checksum:
            raise BlobIntegrityError(
                f"part {number} of {key}: the store computed SHA-256 {echoed}, sent {checksum}"
            )
        return {"PartNumber": number, "ETag": r["ETag"], "ChecksumSHA256": checksum}, raw

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except Exception:  # the original error matters more; stale uploads are listed below
            log.warning("could not abort multipart upload %s of %s", upload_id, key, exc_info=True)

    def abort_stale_uploads(self, older_than_seconds: float = 86400.0) -> int:
        """Abort multipart uploads under this store's prefix begun more than
        ``older_than_seconds`` ago (left by killed processes; they are invisible but take
        space). Returns how many were aborted. A bucket lifecycle rule
        (``AbortIncompleteMultipartUpload``) does the same on AWS."""
        cutoff = time.time() - older_than_seconds
        aborted = 0
        with self._translate("listing unfinished uploads"):
            pages = self.client.get_paginator("list_multipart_uploads")
            for page in pages.paginate(Bucket=self._bucket, Prefix=self._root):
                for up in page.get("Uploads", []):
                    if up["Initiated"].timestamp() < cutoff:
                        self._abort(up["Key"], up["UploadId"])
                        aborted += 1
        return aborted

    def sync(self, digests: Iterable[str] | None = None) -> None:
        """Nothing to do: S3 acknowledges a write once it is durable."""

    # -- reading ----------------------------------------------------------------------------

    def _head(self, key: str) -> dict[str, Any] | None:
        with self._translate(f"looking up {key}"):
            try:
                head: dict[str, Any] = self.client.head_object(Bucket=self._bucket, Key=key)
            except self._exc.ClientError as exc:
                if self._code(exc) in _NOT_FOUND:
                    return None
                raise
            return head

    def exists(self, digest: str) -> bool:
        return self._head(self._key(digest)) is not None

    def stat(self, digest: str) -> BlobStat | None:
        head = self._head(self._key(digest))
        if head is None:
            return None
        return BlobStat(int(head["ContentLength"]), head["LastModified"].timestamp())

    def open(self, digest: str) -> BinaryIO:
        """A buffered, seekable reader that streams the object (ranged GETs after a seek);
        read to its end from the start, it checks the bytes against ``digest``."""
        raw = _ObjectReader(self, digest)
        return io.BufferedReader(raw, buffer_size=_CHUNK)

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as fh:
            return fh.read()

    def _get(self, key: str, digest: str, start: int) -> dict[str, Any]:
        with self._translate(f"reading blob {digest}", digest):
            if start:
                got: dict[str, Any] = self.client.get_object(
                    Bucket=self._bucket, Key=key, Range=f"bytes={start}-"
                )
            else:
                got = self.client.get_object(Bucket=self._bucket, Key=key)
            return got

    def local_path(self, digest: str) -> Path | None:
        """Always None: callers read through :meth:`open` / :meth:`read_bytes`."""
        check_digest(digest)
        return None

    def delete(self, digest: str) -> None:
        key = self._key(digest)
        with self._translate(f"deleting blob {digest}"):
            self.client.delete_object(Bucket=self._bucket, Key=key)

    def iter_digests(self) -> Iterator[str]:
        with self._translate("listing blobs"):
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self._bucket, Prefix=self._root):
                for obj in page.get("Contents", []):
                    name = obj["Key"].rsplit("/", 1)[-1]
                    layout = f"{self._root}{name[:2]}/{name[2:4]}/{name}"
                    if obj["Key"] == layout and _DIGEST.match(name):
                        yield name


class _ObjectReader(io.RawIOBase):
    """One object as a raw stream: a GET body read on demand, re-opened at the current
    offset after a seek or a dropped connection."""

    def __init__(self, store: S3BlobStore, digest: str) -> None:
        self._body: Any = None  # first: close() runs even if the GET below fails
        super().__init__()
        self._store = store
        self._digest = digest
        self._key = store._key(digest)
        got = store._get(self._key, digest, 0)
        self._body = got["Body"]
        self._size = int(got["ContentLength"])
        self._pos = 0
        self._hash: Any = hashlib.sha256()  # None once the reads are not one sequential pass

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        if pos != self._pos:
            self._drop_body()
            self._pos = pos
            self._hash = hashlib.sha256() if pos == 0 else None
        return pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            self._verify()
            return 0
        data = self._read(want)
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        chunks = []
        while self._pos < self._size:
            chunks.append(self._read(self._size - self._pos))
        self._verify()
        return b"".join(chunks)

    def _read(self, n: int) -> bytes:
        errors = self._store._exc
        for attempt in range(_READ_ATTEMPTS):
            if self._body is None:
                self._body = self._store._get(self._key, self._digest, self._pos)["Body"]
            try:
                data: bytes = self._body.read(n)
            except (errors.BotoCoreError, OSError) as exc:
                log.info("reading blob %s at %d: %s; retrying", self._digest, self._pos, exc)
                data = b""
            if data:
                self._pos += len(data)
                if self._hash is not None:
                    self._hash.update(data)
                    self._verify()  # before handing out the last bytes of a damaged blob
                return data
            self._drop_body()  # a dropped connection or a short body: continue from here
            time.sleep(0.1 * attempt)
        raise BlobStoreError(
            f"reading blob {self._digest}: the object store kept ending the transfer at byte "
            f"{self._pos} of {self._size}"
        )

    def _verify(self) -> None:
        if self._hash is not None and self._pos == self._size:
            h, self._hash = self._hash, None
            if h.hexdigest() != self._digest:
                raise BlobIntegrityError(
                    f"blob {self._digest} is damaged in the object store: its bytes hash to "
                    f"{h.hexdigest()}"
                )

    def _drop_body(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()
