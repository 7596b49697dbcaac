"""Backup, restore and database copies: every row and blob comes back, a backup taken
while someone writes is consistent, damaged archives change nothing."""

from __future__ import annotations

import io
import json
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import String, select

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.core.errors import ConflictError, InvalidInputError, NotFoundError
from medlabel.core.settings import Settings
from medlabel.security.roles import ProjectRole, Role
from medlabel.services import annotations as ann_svc
from medlabel.services.access import Principal
from medlabel.services.backup import (
    copy_database,
    create_backup,
    read_manifest,
    restore_backup,
    verify_backup,
)
from medlabel.services.backup.rows import database_tables, digest_columns, read_rows, snapshot
from medlabel.services.blobrefs import DIGEST_COLUMNS
from medlabel.services.context import Context, open_context
from medlabel.services.imports import import_paths
from medlabel.services.maintenance import collect_garbage
from medlabel.services.projects import add_labels, create_project, delete_project, set_member
from medlabel.storage.db.engine import Database
from medlabel.storage.db.models import AuditEvent, Base, Revision
from tests.conftest import sample_file
from tests.services.reader_study import user


@dataclass
class Home:
    ctx: Context
    admin: Principal
    ann: Principal
    project_id: int
    image_ids: list[int]
    annotation_id: int


def populate(ctx: Context) -> Home:
    """Two users, a project with labels, two real DICOM images, an annotation with two
    revisions (masks) submitted for review."""
    admin = user(ctx, "admin", Role.ADMIN)
    ann = user(ctx, "ann", Role.ANNOTATOR)
    project = create_project(ctx, admin, "Backups")
    set_member(ctx, admin, project.id, ann.id, ProjectRole.ANNOTATOR)
    add_labels(ctx, admin, project.id, [LabelSpec(name="organ", kind=LabelKind.MASK, value=1)])
    paths = [sample_file("CT_small.dcm"), sample_file("MR_small.dcm")]
    ids = import_paths(ctx, None, project.id, paths).image_ids
    view = save(ctx, ann, ids[0], value=1)
    view = save(ctx, ann, ids[0], value=2, annotation_id=view.annotation.id,
                base_version=view.annotation.version)  # fmt: skip
    ann_svc.transition(ctx, ann, view.annotation.id, "submit", view.annotation.version)
    return Home(ctx, admin, ann, project.id, list(ids), view.annotation.id)


def save(
    ctx: Context,
    who: Principal,
    image_id: int,
    *,
    value: int,
    annotation_id: int | None = None,
    base_version: int | None = None,
) -> Any:
    shape = _image_shape(ctx, image_id)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[..., : 2 + value % 20, : 2 + value % 20] = 1
    return ann_svc.save_annotation(
        ctx,
        who,
        image_id,
        content=AnnotationContent(),
        mask=mask,
        annotation_id=annotation_id,
        base_version=base_version,
        message=f"save {value}",
    )


def _image_shape(ctx: Context, image_id: int) -> tuple[int, ...]:
    from medlabel.storage.db.models import Image

    with ctx.db.read() as s:
        image = s.get(Image, image_id)
        assert image is not None
        return tuple(int(n) for n in image.shape)


def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order; without the audit events the
    backup and the restore themselves add (and the audit chain's head row, which moves
    with them: restores check the chain instead)."""
    out = {}
    with snapshot(db) as conn:
        for table in database_tables(conn):
            if table.name == "audit_head":
                continue
            rows = list(read_rows(conn, table))
            if table.name == "audit_events":
                at = list(table.columns.keys()).index("action")
                rows = [r for r in rows if r[at] not in ("backup.create", "backup.restore")]
            out[table.name] = rows
    return out


def referenced(ctx: Context) -> set[str]:
    out: set[str] = set()
    with snapshot(ctx.db) as conn:
        for table in database_tables(conn):
            cols = [c.name for c in table.columns]
            for row in read_rows(conn, table):
                for name in digest_columns(table):
                    value = row[cols.index(name)]
                    if value:
                        out.add(value)
    return out


@pytest.fixture
def home(ctx: Context) -> Home:
    return populate(ctx)


@pytest.fixture
def fresh(
    tmp_path: Path, new_database: Callable[[], str | None]
) -> Iterator[Callable[[], Context]]:
    """Factory of new, empty installations (a home; on PostgreSQL runs, its database)."""
    opened: list[Context] = []

    def make() -> Context:
        settings = Settings(
            home=tmp_path / f"restored{len(opened)}",
            database_url=new_database(),
            preload_engines=[],
        )
        opened.append(open_context(settings))
        return opened[-1]

    yield make
    for c in opened:
        c.close()


# ---------------------------------------------------------------------------- edge cases


def test_every_digest_column_is_known_to_the_garbage_collector() -> None:
    """A blob column GC does not know would lose its blobs (and backups would miss them)."""
    listed = {(c.table.name, c.name) for c in DIGEST_COLUMNS}
    named = {
        (t.name, c.name)
        for t in Base.metadata.sorted_tables
        for c in t.columns
        if (c.name == "digest" or c.name.endswith("_digest")) and isinstance(c.type, String)
    }
    assert named <= listed, f"add {sorted(named - listed)} to blobrefs.DIGEST_COLUMNS"


def test_backup_refuses_to_overwrite(ctx: Context, tmp_path: Path) -> None:
    out = tmp_path / "b.tar"
    out.write_bytes(b"precious")
    with pytest.raises(ConflictError, match="already exists"):
        create_backup(ctx, out)
    assert out.read_bytes() == b"precious"


def test_not_a_backup(tmp_path: Path) -> None:
    bogus = tmp_path / "x.tar"
    bogus.write_bytes(b"hello, not a tar file" * 100)
    with pytest.raises(InvalidInputError, match=r"damaged or truncated|not a medlabel backup"):
        verify_backup(bogus)
    with pytest.raises(NotFoundError, match="no backup file"):
        verify_backup(tmp_path / "missing.tar")
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        info = tarfile.TarInfo("readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(InvalidInputError, match=r"no manifest\.json"):
        verify_backup(plain)


def test_empty_installation_round_trip(
    ctx: Context, fresh: Callable[[], Context], tmp_path: Path
) -> None:
    out = tmp_path / "empty.tar"
    report = create_backup(ctx, out)
    assert report.manifest.blobs == {}
    target = fresh()
    restore_backup(target, out)
    assert dump(target.db) == dump(ctx.db)


# ---------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("name", ["b.tar", "b.tar.gz"])
def test_restore_gives_back_every_row_and_blob(
    home: Home, fresh: Callable[[], Context], tmp_path: Path, name: str
) -> None:
    out = tmp_path / name
    report = create_backup(home.ctx, out)
    assert out.stat().st_mode & 0o077 == 0  # password hashes inside: owner only
    assert out.read_bytes().startswith(b"\x1f\x8b") == name.endswith(".gz")  # gzip magic
    m = report.manifest
    assert report.attempts == 1
    assert {t.name: t.rows for t in m.tables}["revisions"] == 2
    assert set(m.blobs) == referenced(home.ctx)
    assert verify_backup(out) == m

    target = fresh()
    result = restore_backup(target, out)
    assert result.audit_chain_ok
    for ctx, action in ((home.ctx, "backup.create"), (target, "backup.restore")):
        with ctx.db.read() as s:  # both on the record, in a chain that still verifies
            last = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
            assert last is not None and last.action == action
            assert last.details["rows"] == m.rows
    assert result.blobs_written == len(m.blobs)
    source_rows, target_rows = dump(home.ctx.db), dump(target.db)
    assert source_rows.keys() == target_rows.keys()
    for table in source_rows:
        assert target_rows[table] == source_rows[table], table
    for digest in m.blobs:
        assert target.blobs.read_bytes(digest) == home.ctx.blobs.read_bytes(digest)

    # the restored installation works: new rows get new ids, the annotation saves again
    ann = ann_svc.get_annotation(target, home.ann, home.annotation_id)
    view = save(target, home.ann, home.image_ids[0], value=5,
                annotation_id=home.annotation_id, base_version=ann.annotation.version)  # fmt: skip
    with target.db.read() as s:
        numbers = sorted(s.scalars(select(Revision.number)))
    assert numbers == [1, 2, 3] and view.annotation.id == home.annotation_id


def test_restore_refuses_a_target_with_data(home: Home, tmp_path: Path) -> None:
    out = tmp_path / "b.tar"
    create_backup(home.ctx, out)
    before = dump(home.ctx.db)
    with pytest.raises(ConflictError, match="not empty"):
        restore_backup(home.ctx, out)
    assert dump(home.ctx.db) == before


# ---------------------------------------------------------------------------- damage


def _rewrite(src: Path, dest: Path, change: Callable[[str, bytes], bytes | None]) -> None:
    """Copy a tar, passing each member's data through ``change`` (None drops it)."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w") as tout:
        for member in tin:
            fh = tin.extractfile(member)
            assert fh is not None
            data = change(member.name, fh.read())
            if data is None:
                continue
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))


def _is_empty(ctx: Context) -> bool:
    rows = dump(ctx.db)
    return all(not r for t, r in rows.items() if t != "audit_head") and not list(
        ctx.blobs.iter_digests()
    )


def test_damaged_archives_are_refused_before_anything_is_written(
    home: Home, fresh: Callable[[], Context], tmp_path: Path
) -> None:
    out = tmp_path / "b.tar"
    create_backup(home.ctx, out)
    data = out.read_bytes()

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = tmp_path / "flipped.tar"
    _rewrite(
        out, flipped, lambda n, d: d[:-1] + bytes([d[-1] ^ 1]) if n.startswith("blobs/") else d
    )
    dropped = tmp_path / "dropped.tar"
    _rewrite(out, dropped, lambda n, d: None if n == "tables/revisions.jsonl" else d)

    target = fresh()
    for bad, message in [
        (truncated, "truncated|incomplete|damaged"),
        (flipped, "damaged"),
        (dropped, "incomplete"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            restore_backup(target, bad)
    assert _is_empty(target)


def test_failure_during_restore_leaves_the_target_empty(
    home: Home, fresh: Callable[[], Context], tmp_path: Path
) -> None:
    """Rows the database refuses (after the blobs were stored) roll everything back."""
    out = tmp_path / "b.tar"
    create_backup(home.ctx, out)
    manifest = read_manifest(out)
    bad = tmp_path / "bad.tar"

    def break_revisions(name: str, data: bytes) -> bytes:
        if name != "tables/revisions.jsonl":
            return data
        header, *rows = data.decode().splitlines()
        row = json.loads(rows[-1])
        row[0] = json.loads(rows[0])[0]  # a duplicate primary key
        return "\n".join([header, *rows[:-1], json.dumps(row)]).encode() + b"\n"

    _rewrite(out, bad, break_revisions)
    target = fresh()
    # the manifest of the original claims it is intact: the database must catch it
    with pytest.raises(InvalidInputError, match="could not be restored"):
        restore_backup(target, bad, manifest=manifest)
    assert _is_empty(target)
    restore_backup(target, out)  # and the target is still usable
    assert dump(target.db) == dump(home.ctx.db)


# ---------------------------------------------------------------------------- concurrency


def test_backup_while_annotations_are_written_is_consistent(
    home: Home, fresh: Callable[[], Context], tmp_path: Path
) -> None:
    stop = threading.Event()
    saved: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            view = ann_svc.get_annotation(home.ctx, home.ann, home.annotation_id)
            i = 10
            while not stop.is_set() or len(saved) < 3:
                view = save(home.ctx, home.ann, home.image_ids[0], value=i,
                            annotation_id=home.annotation_id,
                            base_version=view.annotation.version)  # fmt: skip
                saved.append(i)
                i += 1
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    def slow_progress(_stage: str, _done: int, _total: int) -> None:
        stop.wait(0.01)  # give the writer time to commit during the backup

    def more_saves(_attempt: int) -> None:
        """Let the writer commit twice more between reading the rows and copying blobs."""
        wanted = len(saved) + 2
        for _ in range(6000):
            if len(saved) >= wanted or errors:
                return
            stop.wait(0.01)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        out = tmp_path / "live.tar"
        report = create_backup(home.ctx, out, progress=slow_progress, after_snapshot=more_saves)
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors
    with home.ctx.db.read() as s:
        total = len(list(s.scalars(select(Revision.id))))
    assert {t.name: t.rows for t in report.manifest.tables}["revisions"] < total
    target = fresh()
    restore_backup(target, out)
    with target.db.read() as s:
        digests = [d for d in s.scalars(select(Revision.mask_digest)) if d]
        revisions = len(list(s.scalars(select(Revision.id))))
    assert revisions == {t.name: t.rows for t in report.manifest.tables}["revisions"]
    assert all(target.blobs.exists(d) for d in digests)
    assert set(digests) <= set(report.manifest.blobs)


def test_blobs_collected_after_the_snapshot_start_a_new_one(
    home: Home, fresh: Callable[[], Context], tmp_path: Path
) -> None:
    """A project deleted and its blobs garbage-collected between the snapshot and the
    blob copy: the backup notices and takes a new snapshot, without the project."""

    def delete_everything(attempt: int) -> None:
        if attempt == 1:
            delete_project(home.ctx, home.admin, home.project_id)
            assert collect_garbage(home.ctx, min_age_seconds=0).removed > 0

    out = tmp_path / "b.tar"
    report = create_backup(home.ctx, out, after_snapshot=delete_everything)
    assert report.attempts == 2
    rows = {t.name: t.rows for t in report.manifest.tables}
    assert rows["projects"] == 0 and rows["images"] == 0
    target = fresh()
    restore_backup(target, out)
    assert dump(target.db) == dump(home.ctx.db)


def test_a_lost_blob_is_reported(home: Home, tmp_path: Path) -> None:
    (digest,) = list(referenced(home.ctx))[:1]
    home.ctx.blobs.delete(digest)
    with pytest.raises(NotFoundError, match=f"{digest}.*missing"):
        create_backup(home.ctx, tmp_path / "b.tar", attempts=2)
    assert not (tmp_path / "b.tar").exists()
    assert not list(tmp_path.glob("*.partial"))


# ---------------------------------------------------------------------------- versions

OLD_REVISION = "7c1d2e3f4a50"  # before reader studies added columns to projects


def _old_installation(tmp_path: Path) -> Context:
    """A SQLite installation at an older schema revision, with a user and a project."""
    from medlabel.core.ids import utcnow
    from medlabel.storage.blob import LocalBlobStore
    from medlabel.storage.db.migrate import upgrade

    home = tmp_path / "old"
    home.mkdir()
    db = Database(f"sqlite:///{home / 'medlabel.db'}")
    upgrade(db.engine, OLD_REVISION)
    with db.write() as s:
        tables = {t.name: t for t in database_tables(s.connection())}
        now = utcnow()
        s.execute(tables["users"].insert(), {
            "id": 1, "username": "olduser", "full_name": "", "password_hash": "x",
            "role": "admin", "is_active": True, "failed_logins": 0, "created_at": now,
        })  # fmt: skip
        s.execute(tables["projects"].insert(), {
            "id": 1, "name": "Old", "description": "", "created_at": now, "created_by": 1,
            "deid_secret": "0" * 64, "deid_options": {"keep": []},
        })  # fmt: skip
    settings = Settings(home=home, database_url=db.url, preload_engines=[])
    return Context(settings=settings, db=db, blobs=LocalBlobStore(home / "blobs"))


def test_an_older_backup_is_restored_then_upgraded(tmp_path: Path) -> None:
    from medlabel.storage.db.migrate import current_revision, head_revision
    from medlabel.storage.db.models import Project

    old = _old_installation(tmp_path)
    try:
        out = tmp_path / "old.tar"
        assert create_backup(old, out).manifest.revision == OLD_REVISION
    finally:
        old.close()

    # a target that already has the newest schema cannot take it
    at_head = open_context(Settings(home=tmp_path / "head",
                                    database_url=f"sqlite:///{tmp_path / 'head.db'}"))  # fmt: skip
    try:
        with pytest.raises(InvalidInputError, match="new database without tables"):
            restore_backup(at_head, out)
    finally:
        at_head.close()

    new = Settings(home=tmp_path / "new", database_url=f"sqlite:///{tmp_path / 'new.db'}")
    target = open_context(new, migrate=False)
    try:
        result = restore_backup(target, out)
        assert result.upgraded_from == OLD_REVISION
        assert current_revision(target.db.engine) == head_revision()
        with target.db.read() as s:
            project = s.get(Project, 1)
            assert project is not None and project.name == "Old"
            assert project.readers_per_image == 1  # added by the upgrade
    finally:
        target.close()


def test_a_backup_of_a_newer_medlabel_is_refused(home: Home, tmp_path: Path) -> None:
    out = tmp_path / "b.tar"
    create_backup(home.ctx, out)
    newer = tmp_path / "newer.tar"

    def from_the_future(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["database"]["revision"] = "ffffffffffff"
        manifest["medlabel_version"] = "99.0"
        return json.dumps(manifest).encode()

    _rewrite(out, newer, from_the_future)
    target = open_context(
        Settings(home=tmp_path / "t", database_url=f"sqlite:///{tmp_path / 't.db'}"),
        migrate=False,
    )
    try:
        with pytest.raises(InvalidInputError, match="does not know"):
            restore_backup(target, newer)
    finally:
        target.close()


# ---------------------------------------------------------------------------- migrate-db


def test_copy_refuses_the_same_or_a_full_database(
    home: Home, tmp_path: Path, new_database: Callable[[], str | None]
) -> None:
    with pytest.raises(InvalidInputError, match="same database"):
        copy_database(home.ctx.db, Database(home.ctx.db.url))
    other = Settings(home=tmp_path / "other", database_url=new_database(), preload_engines=[])
    with _ctx(other) as target:
        populate(target)
        with pytest.raises(ConflictError, match="not empty"):
            copy_database(home.ctx.db, target.db)


class _ctx:  # noqa: N801 - a tiny context manager for a Context
    def __init__(self, settings: Settings) -> None:
        self.ctx = open_context(settings)

    def __enter__(self) -> Context:
        return self.ctx

    def __exit__(self, *exc: object) -> None:
        self.ctx.close()


@pytest.mark.services
def test_migrate_sqlite_to_postgresql(
    tmp_path: Path, new_postgres_database: Callable[[], str]
) -> None:
    """The SQLite default copied to a real PostgreSQL: every row equal, sequences moved
    past the copied ids, and the copied installation keeps working."""
    source_settings = Settings(home=tmp_path / "sqlite", database_url=None, preload_engines=[])
    source = open_context(source_settings)
    try:
        assert source.db.is_sqlite
        h = populate(source)
        target_url = new_postgres_database()
        target_db = Database(target_url)
        try:
            report = copy_database(source.db, target_db)
            assert report.tables["revisions"] == 2
            assert dump(target_db) == dump(source.db)
        finally:
            target_db.dispose()
        pg = open_context(Settings(home=source_settings.home, database_url=target_url,
                                   preload_engines=[]))  # fmt: skip
        try:
            view = ann_svc.get_annotation(pg, h.ann, h.annotation_id)
            save(pg, h.ann, h.image_ids[0], value=7, annotation_id=h.annotation_id,
                 base_version=view.annotation.version)  # fmt: skip
            other = user(pg, "newcomer", Role.ANNOTATOR)  # a new id from the moved sequence
            assert other.id > h.ann.id
            with pg.db.read() as s:
                assert len(list(s.scalars(select(Revision.id)))) == 3
        finally:
            pg.close()
    finally:
        source.close()


# ---------------------------------------------------------------------------- object storage


def _s3_settings(home: Path, seaweedfs: Any, database_url: str | None) -> Settings:
    from tests.support.seaweedfs import ACCESS_KEY, BUCKET, SECRET_KEY

    return Settings(
        home=home,
        database_url=database_url,
        blob_url=f"s3://{BUCKET}/{seaweedfs.new_prefix()}",
        s3_endpoint_url=seaweedfs.endpoint_url,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
        preload_engines=[],
    )


@pytest.mark.services
def test_backup_and_restore_with_object_storage(
    tmp_path: Path, seaweedfs: Any, new_database: Callable[[], str | None]
) -> None:
    """Blobs in S3 (a real SeaweedFS) on both sides: only the BlobStore interface is used."""
    source = open_context(_s3_settings(tmp_path / "src", seaweedfs, new_database()))
    target = open_context(_s3_settings(tmp_path / "dst", seaweedfs, new_database()))
    try:
        populate(source)
        out = tmp_path / "s3.tar"
        report = create_backup(source, out)
        assert report.manifest.blobs and set(report.manifest.blobs) == referenced(source)
        restore_backup(target, out)
        assert dump(target.db) == dump(source.db)
        for digest in report.manifest.blobs:
            assert target.blobs.read_bytes(digest) == source.blobs.read_bytes(digest)

        # a blob lost from the bucket is noticed at its first read (objects open lazily)
        source.blobs.delete(next(iter(report.manifest.blobs)))
        with pytest.raises(NotFoundError, match="missing"):
            create_backup(source, tmp_path / "again.tar", attempts=1)
    finally:
        source.close()
        target.close()
