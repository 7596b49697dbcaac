"""``medlabel backup`` / ``restore``: one portable tar archive with every table's rows
(read in one snapshot), every blob those rows refer to, and a manifest.

Layout (members in this order, so a restore reads the archive front to back)::

    blobs/<sha256>          every blob a row refers to, named by its digest
    tables/<name>.jsonl     a header line {"table", "columns"}, then one JSON array per row
    manifest.json           format, versions, schema revision, row counts, sizes and
                            SHA-256 of every member

Consistency with a running server: rows are read in one snapshot; blobs are immutable
and content-addressed, so copying them afterwards is consistent unless one of them is
deleted in between. Blobs are only deleted when no row refers to them any more (``medlabel
db gc``, removing a model, the clean-up of a failed import), i.e. after a later
transaction dropped the rows our snapshot still has. A blob found missing while copying
therefore starts the backup over with a new snapshot (which no longer has those rows); a
blob missing from two snapshots in a row is reported as lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import io
import json
import logging
import os
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from medlabel import __version__
from medlabel.core.errors import (
    ConflictError,
    InvalidInputError,
    MedlabelError,
    NotFoundError,
)
from medlabel.security.audit import AuditAction, record
from medlabel.security.audit.chain import verify_chain
from medlabel.services.backup.rows import (
    RowWriter,
    check_empty,
    database_tables,
    encode_value,
    read_rows,
    row_decoder,
    row_digests,
    snapshot,
)
from medlabel.services.blobrefs import BlobTransaction, unit_of_work
from medlabel.services.context import Context
from medlabel.storage.db.migrate import current_revision, head_revision, upgrade

log = logging.getLogger(__name__)

FORMAT = "medlabel-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_CHUNK = 1024 * 1024
_SPOOL = 32 * 1024 * 1024

Progress = Callable[[str, int, int], None]


def _no_progress(_stage: str, _done: int, _total: int) -> None:
    pass


# ---------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class TableEntry:
    name: str
    member: str
    rows: int
    columns: list[str]
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a backup holds; parsed strictly (:meth:`from_json`)."""

    medlabel_version: str
    created_at: str
    dialect: str
    revision: str | None
    tables: list[TableEntry]
    #: digest -> size in bytes
    blobs: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def blob_bytes(self) -> int:
        return sum(self.blobs.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "medlabel_version": self.medlabel_version,
            "created_at": self.created_at,
            "database": {"dialect": self.dialect, "revision": self.revision},
            "tables": [vars(t) for t in self.tables],
            "blobs": [{"digest": d, "size": s} for d, s in sorted(self.blobs.items())],
        }

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Parse a manifest; :class:`InvalidInputError` names what is wrong."""
        try:
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise InvalidInputError("this is not a medlabel backup (no backup manifest)")
            if data.get("format_version") != FORMAT_VERSION:
                raise InvalidInputError(
                    f"backup format version {data.get('format_version')!r} is not supported "
                    f"by this medlabel (it reads version {FORMAT_VERSION})"
                )
            tables = [
                TableEntry(
                    name=str(t["name"]),
                    member=str(t["member"]),
                    rows=int(t["rows"]),
                    columns=[str(c) for c in t["columns"]],
                    size=int(t["size"]),
                    sha256=str(t["sha256"]),
                )
                for t in data["tables"]
            ]
            blobs = {str(b["digest"]): int(b["size"]) for b in data["blobs"]}
            db = data["database"]
            return cls(
                medlabel_version=str(data["medlabel_version"]),
                created_at=str(data["created_at"]),
                dialect=str(db["dialect"]),
                revision=None if db["revision"] is None else str(db["revision"]),
                tables=tables,
                blobs=blobs,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"the backup's manifest is damaged ({exc!r})") from None


@dataclass(frozen=True)
class BackupReport:
    path: Path
    manifest: Manifest
    #: snapshots taken (more than one when blobs were deleted during the copy)
    attempts: int


@dataclass(frozen=True)
class RestoreReport:
    manifest: Manifest
    #: row counts of the restored database, by table
    tables: dict[str, int]
    blobs: int
    #: blobs the target store did not have yet
    blobs_written: int
    #: whether the restored audit log's hash chain verifies
    audit_chain_ok: bool
    #: the backup's schema revision when it was older than this medlabel's (then upgraded)
    upgraded_from: str | None = None


# ---------------------------------------------------------------------------- backup


class _BlobVanishedError(Exception):
    def __init__(self, digest: str, table: str) -> None:
        super().__init__(digest)
        self.digest = digest
        self.table = table


def _compressed(path: Path) -> bool:
    return path.name.endswith((".gz", ".tgz"))


class _Dump:
    """A table dump being written: JSON lines, hashed on the way."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def put(self, obj: Any) -> None:
        data = (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        self._fh.write(data)
        self._hash.update(data)
        self.size += len(data)

    def sha256(self) -> str:
        return self._hash.hexdigest()

    def __enter__(self) -> _Dump:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


def create_backup(
    ctx: Context,
    out: Path,
    *,
    progress: Progress | None = None,
    attempts: int = 3,
    after_snapshot: Callable[[int], None] | None = None,
) -> BackupReport:
    """Write a consistent backup of the database and its blobs to ``out`` (a new
    ``.tar``, or ``.tar.gz`` / ``.tgz`` for a compressed one). Safe while the server runs.

    Parameters
    ----------
    ctx
        The installation to back up.
    out
        The archive to create; it must not exist. Written to ``<out>.<pid>.partial`` and
        renamed when complete, readable by its owner only (it holds password hashes).
    progress
        Called with ``(stage, done, total)``.
    attempts
        Snapshots to try when blobs vanish during the copy (see the module docstring).
    after_snapshot
        Called with the attempt number once the rows are read (a test hook).

    Raises
    ------
    ConflictError
        ``out`` exists.
    NotFoundError
        A blob rows refer to is missing from the store in every snapshot.
    InvalidInputError
        A blob in the store does not match its digest (the store is damaged).
    """
    out = Path(out)
    if out.exists():
        raise ConflictError(f"{out} already exists; name a new file for the backup")
    if not out.parent.is_dir():
        raise NotFoundError(f"the folder {out.parent} does not exist")
    partial = out.with_name(f"{out.name}.{os.getpid()}.partial")  # one per process
    report = progress or _no_progress
    vanished: _BlobVanishedError | None = None
    for attempt in range(1, max(1, attempts) + 1):
        try:
            manifest = _write_backup(
                ctx, partial, _compressed(out), report, attempt, after_snapshot
            )
            with ctx.db.write() as s:  # a full copy of the data leaves: on the record
                record(s, None, AuditAction.BACKUP_CREATE, target_type="backup",
                       details=_audit_details(manifest))  # fmt: skip
            os.replace(partial, out)
        except _BlobVanishedError as exc:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            log.info("backup: blob %s vanished during the copy; taking a new snapshot", exc.digest)
            vanished = exc
            continue
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise
        log.info(
            "backup %s: %d rows, %d blobs (%d bytes)",
            out,
            manifest.rows,
            len(manifest.blobs),
            manifest.blob_bytes,
        )
        return BackupReport(out, manifest, attempt)
    assert vanished is not None
    raise NotFoundError(
        f"blob {vanished.digest} (referred to by table {vanished.table}) is missing from the "
        f"blob store in {attempts} snapshots in a row: the store has lost it. Find the file "
        "in an older backup, or remove the rows that refer to it"
    )


def _write_backup(
    ctx: Context,
    path: Path,
    compressed: bool,
    report: Progress,
    attempt: int,
    after_snapshot: Callable[[int], None] | None,
) -> Manifest:
    with tempfile.TemporaryDirectory(prefix="medlabel-backup-", dir=path.parent) as tmp:
        dumps: list[tuple[TableEntry, Path]] = []
        referenced: dict[str, str] = {}  # digest -> a table referring to it
        with snapshot(ctx.db) as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
            dialect = conn.dialect.name
            tables = database_tables(conn)
            for i, table in enumerate(tables):
                report("reading tables", i, len(tables))
                columns = [c.name for c in table.columns]
                dump = Path(tmp) / f"{i:03d}.jsonl"
                rows = 0
                with _Dump(dump) as fh:
                    fh.put({"table": table.name, "columns": columns})
                    for row in read_rows(conn, table):
                        fh.put([encode_value(v) for v in row])
                        rows += 1
                        for digest in row_digests(table, columns, row):
                            referenced.setdefault(digest, table.name)
                member = f"tables/{table.name}.jsonl"
                entry = TableEntry(table.name, member, rows, columns, fh.size, fh.sha256())
                dumps.append((entry, dump))
        if after_snapshot is not None:
            after_snapshot(attempt)
        created_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        blobs: dict[str, int] = {}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with (
            os.fdopen(fd, "wb") as raw,
            (
                tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT)
                if compressed
                else tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT)
            ) as tar,
        ):
            now = time.time()
            digests = sorted(referenced)
            for i, digest in enumerate(digests):
                report("copying blobs", i, len(digests))
                with tempfile.SpooledTemporaryFile(_SPOOL, dir=tmp) as spool:
                    blobs[digest] = _copy_blob(ctx, digest, referenced[digest], spool)  # type: ignore[arg-type]
                    spool.seek(0)
                    tar.addfile(_info(f"blobs/{digest}", blobs[digest], now), spool)
            report("copying blobs", len(digests), len(digests))
            for entry, dump in dumps:
                with dump.open("rb") as dumped:
                    tar.addfile(_info(entry.member, entry.size, now), dumped)
            manifest = Manifest(
                medlabel_version=__version__,
                created_at=created_at,
                dialect=dialect,
                revision=revision,
                tables=[e for e, _ in dumps],
                blobs=blobs,
            )
            data = json.dumps(manifest.to_json(), indent=1).encode()
            tar.addfile(_info(MANIFEST, len(data), now), io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
    return manifest


def _copy_blob(ctx: Context, digest: str, table: str, spool: BinaryIO) -> int:
    """Copy one blob into ``spool``, checking its digest; returns its size."""
    h = hashlib.sha256()
    size = 0
    try:  # object stores may open lazily: missing shows at the first read
        with ctx.blobs.open(digest) as src:
            while chunk := src.read(_CHUNK):
                h.update(chunk)
                spool.write(chunk)
                size += len(chunk)
    except NotFoundError:
        raise _BlobVanishedError(digest, table) from None
    if h.hexdigest() != digest:
        raise InvalidInputError(
            f"blob {digest} in the store is damaged (its content hashes to {h.hexdigest()}); "
            "restore that file from an older backup"
        )
    return size


def _info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o600
    return info


# ---------------------------------------------------------------------------- reading

#: what reading a damaged tar or gzip stream raises (not other I/O errors: a full disk
#: while restoring blobs is not the archive's fault)
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


@contextlib.contextmanager
def _archive(path: Path) -> Iterator[tarfile.TarFile]:
    """Open a backup for reading; damage anywhere becomes :class:`InvalidInputError`."""
    if not path.is_file():
        raise NotFoundError(f"no backup file {path}")
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed below, errors told apart
    except (*_READ_ERRORS, OSError) as exc:
        raise InvalidInputError(f"{path} is not a medlabel backup ({exc})") from None
    try:
        with tar:
            yield tar
    except _READ_ERRORS as exc:
        raise InvalidInputError(
            f"{path} is damaged or truncated, or not a medlabel backup ({exc})"
        ) from None


def read_manifest(path: Path) -> Manifest:
    """The manifest of the backup at ``path`` (members are not checked)."""
    with _archive(path) as tar:
        try:
            member = tar.getmember(MANIFEST)
        except KeyError:
            raise InvalidInputError(
                f"{path} has no {MANIFEST}: it is truncated or not a medlabel backup"
            ) from None
        fh = tar.extractfile(member)
        if fh is None:
            raise InvalidInputError(f"{MANIFEST} in {path} is not a file")
        try:
            data = json.loads(fh.read())
        except ValueError as exc:  # not JSON, not UTF-8
            raise InvalidInputError(f"{MANIFEST} in {path} is damaged ({exc})") from None
    return Manifest.from_json(data)


def verify_backup(path: Path, *, progress: Progress | None = None) -> Manifest:
    """Read the whole archive and check every member against the manifest (size and
    SHA-256; blobs against their names); returns the manifest.

    Raises
    ------
    InvalidInputError
        The archive is truncated, damaged, or not a medlabel backup; the message says
        which member.
    """
    path = Path(path)
    report = progress or _no_progress
    manifest = read_manifest(path)
    expected = {t.member: (t.sha256, t.size) for t in manifest.tables}
    expected.update({f"blobs/{d}": (d, s) for d, s in manifest.blobs.items()})
    seen: set[str] = set()
    with _archive(path) as tar:
        for member in tar:
            if member.name == MANIFEST:
                continue
            want = expected.get(member.name)
            if want is None or member.name in seen or not member.isfile():
                raise InvalidInputError(f"{path} has an unexpected member {member.name!r}")
            fh = tar.extractfile(member)
            assert fh is not None
            h = hashlib.sha256()
            size = 0
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
            if (h.hexdigest(), size) != want:
                raise InvalidInputError(
                    f"{member.name} in {path} is damaged (its size or SHA-256 differs from "
                    "the manifest)"
                )
            seen.add(member.name)
            report("checking", len(seen), len(expected))
    lost = sorted(expected.keys() - seen)
    if lost:
        raise InvalidInputError(
            f"{path} is incomplete: {len(lost)} member(s) missing, e.g. {lost[0]}"
        )
    return manifest


# ---------------------------------------------------------------------------- restore


def restore_backup(
    ctx: Context,
    path: Path,
    *,
    manifest: Manifest | None = None,
    progress: Progress | None = None,
) -> RestoreReport:
    """Restore a backup into the empty installation ``ctx`` (any blob store; a database
    at the backup's schema revision, or a new one without tables: see below).

    The archive is checked completely first (unless ``manifest`` says
    :func:`verify_backup` already did). Blobs are stored and checked against their
    digests, then all rows are inserted in one transaction with their original ids and
    the row counts compared with the manifest. On any failure the transaction is rolled
    back and the blobs it stored are deleted again: nothing is half-restored.

    A backup made by an older medlabel is restored at its own schema revision into a new
    database (open the target with ``open_context(settings, migrate=False)``), then
    upgraded to this medlabel's schema, like an upgrade of that installation.

    Raises
    ------
    ConflictError
        The target database already holds data.
    InvalidInputError
        The archive is damaged, made by a newer medlabel, or older than a target that
        already has a schema.
    """
    path = Path(path)
    report = progress or _no_progress
    if manifest is None:
        manifest = verify_backup(path, progress=progress)
    _schema_of_backup(ctx, manifest)
    tx = BlobTransaction(ctx.blobs)
    total = len(manifest.blobs) + len(manifest.tables)
    by_member = {t.member: t for t in manifest.tables}
    try:
        with unit_of_work(ctx.db, ctx.blobs, tx) as (session, _):
            conn = session.connection()
            tables = database_tables(conn)
            check_empty(conn, tables, where="the target database")
            writer = RowWriter(session, tables, order=[t.name for t in manifest.tables])
            done = 0
            with _archive(path) as tar:
                for member in tar:
                    fh = cast(BinaryIO, tar.extractfile(member)) if member.isfile() else None
                    if fh is None or member.name == MANIFEST:
                        continue
                    if member.name.startswith("blobs/"):
                        ref = tx.put_stream(fh)
                        if f"blobs/{ref.digest}" != member.name:
                            raise InvalidInputError(f"{member.name} in {path} is damaged")
                    else:
                        entry = by_member.get(member.name)
                        if entry is None:
                            raise InvalidInputError(f"unexpected member {member.name!r}")
                        _restore_table(writer, entry, fh)
                    done += 1
                    report("restoring", done, total)
            counts = writer.finish()
            for entry in manifest.tables:
                if counts.get(entry.name) != entry.rows:
                    raise InvalidInputError(
                        f"after the restore table {entry.name} has {counts.get(entry.name)} "
                        f"rows, the backup {entry.rows}"
                    )
    except (ValueError, SQLAlchemyError) as exc:  # damaged rows (JSON, dates, constraints)
        reason = getattr(exc, "orig", None) or exc
        raise InvalidInputError(
            f"the backup's rows could not be restored: {str(reason).splitlines()[0]}"
        ) from None
    upgraded_from = None
    if manifest.revision != head_revision():  # an older backup: bring it up to date
        upgraded_from = manifest.revision
        try:
            upgrade(ctx.db.engine)
        except Exception as exc:  # report which step, keep the restored rows
            raise MedlabelError(
                f"the backup was restored at schema revision {manifest.revision}, but "
                f"upgrading it failed ({str(exc).splitlines()[0]}); fix the cause and run "
                "`medlabel db upgrade`"
            ) from exc
    with ctx.db.write() as s:
        details = {**_audit_details(manifest), "backup_created_at": manifest.created_at}
        if upgraded_from is not None:
            details["upgraded_from"] = upgraded_from
        record(s, None, AuditAction.BACKUP_RESTORE, target_type="backup", details=details)
    with ctx.db.read() as s:
        audit = verify_chain(s)
    if not audit.ok:
        log.warning("restored audit log does not verify: %s", audit.message)
    log.info("restored %s: %d rows, %d blobs", path, manifest.rows, len(manifest.blobs))
    return RestoreReport(
        manifest=manifest,
        tables=counts,
        blobs=len(manifest.blobs),
        blobs_written=len(tx.created),
        audit_chain_ok=audit.ok,
        upgraded_from=upgraded_from,
    )


def _audit_details(manifest: Manifest) -> dict[str, Any]:
    return {
        "rows": manifest.rows,
        "tables": len(manifest.tables),
        "blobs": len(manifest.blobs),
        "bytes": manifest.blob_bytes,
        "revision": manifest.revision,
        "medlabel_version": manifest.medlabel_version,
    }


def _schema_of_backup(ctx: Context, manifest: Manifest) -> None:
    """Bring a new database to the backup's schema revision, or check that it is there.

    A backup restores at the revision it was made at; an older one is upgraded after its
    rows are in (as if that installation had been upgraded), so its target must be new
    (no schema yet) unless it already is at the backup's revision.
    """
    here = current_revision(ctx.db.engine)
    if here == manifest.revision:
        return
    made_by = f"medlabel {manifest.medlabel_version}"
    if here is not None or manifest.revision is None:
        raise InvalidInputError(
            f"the target database is at schema revision {here}, the backup (made by "
            f"{made_by}) at {manifest.revision}: restore it into a new database without "
            "tables; medlabel creates them at the backup's revision and upgrades after"
        )
    try:
        upgrade(ctx.db.engine, manifest.revision)
    except CommandError:
        raise InvalidInputError(
            f"the backup was made by {made_by}, whose schema revision {manifest.revision} "
            f"this medlabel ({__version__}) does not know: restore it with {made_by} or newer"
        ) from None


def _restore_table(writer: RowWriter, entry: TableEntry, fh: IO[bytes]) -> None:
    lines = io.TextIOWrapper(fh, encoding="utf-8")
    header = json.loads(lines.readline() or "null")
    if header != {"table": entry.name, "columns": entry.columns}:
        raise InvalidInputError(f"{entry.member} does not start with its table header")
    decode = row_decoder(writer.table(entry.name), entry.columns)
    rows = (decode(json.loads(line)) for line in lines if line.strip())
    written = writer.write(entry.name, entry.columns, rows)
    if written != entry.rows:
        raise InvalidInputError(f"{entry.member} has {written} rows, the manifest {entry.rows}")
