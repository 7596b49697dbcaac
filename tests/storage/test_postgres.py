"""PostgreSQL itself, in every run (not only with ``MEDLABEL_TEST_DB=postgresql``): the
migrations on a fresh server, the connection pool, and concurrent writers — racing saves
of one annotation, annotators claiming queue slots, the audit chain under load."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select, text

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.core.errors import ConflictError
from medlabel.core.settings import Settings
from medlabel.security.roles import ProjectRole, Role
from medlabel.server.app import create_app
from medlabel.services import annotations as ann_svc
from medlabel.services import assignments as queue_svc
from medlabel.services.audit import verify_audit
from medlabel.services.context import Context, open_context
from medlabel.services.imports import import_paths
from medlabel.services.projects import add_labels, create_project, set_member
from medlabel.storage.db.engine import Database
from medlabel.storage.db.migrate import current_revision, downgrade, head_revision, upgrade
from medlabel.storage.db.models import AuditEvent, Base, Revision
from tests.conftest import PASSWORD, sample_file
from tests.services.reader_study import make_study, user
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.services

T = TypeVar("T")


def _race(n: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(0..n-1)`` in ``n`` threads released together by a barrier."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


@pytest.fixture
def pg_ctx(tmp_path: Path, postgres_database: str) -> Iterator[Context]:
    settings = Settings(home=tmp_path / "home", database_url=postgres_database, preload_engines=[])
    ctx = open_context(settings)
    assert ctx.db.engine.dialect.name == "postgresql"
    yield ctx
    ctx.close()


# migrations ------------------------------------------------------------------------------
def test_fresh_server_migrates_up_to_the_models_and_back_down(postgres: PostgresCluster) -> None:
    name = postgres.create_database()  # empty: not the migrated template
    db = Database(postgres.url(name))
    try:
        assert current_revision(db.engine) is None
        upgrade(db.engine)
        assert current_revision(db.engine) == head_revision()
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        upgrade(db.engine)  # idempotent
        downgrade(db.engine, "base")
        assert current_revision(db.engine) is None
        assert set(inspect(db.engine).get_table_names()) == {"alembic_version"}
        upgrade(db.engine)  # and up again, after a full downgrade
        assert current_revision(db.engine) == head_revision()
    finally:
        db.dispose()
        postgres.drop_database(name)


def test_two_unique_constraints_on_one_column_have_distinct_names(pg_ctx: Context) -> None:
    """The naming convention once named both of ``labels``' constraints after their first
    column only, which PostgreSQL refuses."""
    names = {c["name"] for c in inspect(pg_ctx.db.engine).get_unique_constraints("labels")}
    assert names == {"uq_labels_project_id_name", "uq_labels_project_id_value"}


def test_postgres_url_without_driver_means_psycopg(postgres_database: str) -> None:
    db = Database(postgres_database.replace("postgresql+psycopg://", "postgresql://"))
    try:
        assert db.engine.dialect.driver == "psycopg"
        with db.read() as s:
            assert s.execute(text("SELECT 1")).scalar() == 1
    finally:
        db.dispose()


# pooling ---------------------------------------------------------------------------------
def test_pool_follows_the_settings_and_queues_beyond_them(
    tmp_path: Path, postgres_database: str
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        database_url=postgres_database,
        db_pool_size=2,
        db_max_overflow=1,
        preload_engines=[],
    )
    ctx = open_context(settings)
    try:
        pool = ctx.db.engine.pool
        assert pool.size() == 2  # type: ignore[attr-defined]
        assert pool._max_overflow == 1  # type: ignore[attr-defined]

        def backend_pid(_: int) -> int:
            with ctx.db.read() as s:
                s.execute(text("SELECT pg_sleep(0.05)"))
                return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())

        pids = _race(8, backend_pid)  # 8 threads share at most 3 connections: they wait
        assert len(set(pids)) <= 3
        assert pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        ctx.close()


# concurrent writers ----------------------------------------------------------------------
def _annotated_image(ctx: Context) -> tuple[object, int, int, int]:
    admin = user(ctx, "admin", Role.ADMIN)
    project = create_project(ctx, admin, "P")
    add_labels(ctx, admin, project.id, [LabelSpec(name="c", kind=LabelKind.CLASSIFICATION)])
    (image_id,) = import_paths(ctx, admin, project.id, [sample_file("CT_small.dcm")]).image_ids
    first = ann_svc.save_annotation(ctx, admin, image_id, content=AnnotationContent())
    return admin, image_id, first.annotation.id, first.annotation.version


def test_racing_saves_on_one_version_give_one_winner(pg_ctx: Context) -> None:
    admin, image_id, annotation_id, base = _annotated_image(pg_ctx)

    def save(i: int) -> str:
        try:
            ann_svc.save_annotation(
                pg_ctx,
                admin,  # type: ignore[arg-type]
                image_id,
                annotation_id=annotation_id,
                base_version=base,
                content=AnnotationContent(classes=["c"]),
                message=f"writer {i}",
            )
        except ConflictError:
            return "conflict"
        return "ok"

    results = _race(8, save)
    assert Counter(results) == {"ok": 1, "conflict": 7}
    history = ann_svc.list_revisions(pg_ctx, admin, annotation_id)  # type: ignore[arg-type]
    assert [r.number for r in history] == [2, 1]
    winner = ann_svc.get_annotation(pg_ctx, admin, annotation_id)  # type: ignore[arg-type]
    assert winner.annotation.head_revision_id == history[0].id
    assert winner.annotation.version == base + 1


def test_racing_saves_through_the_api_give_one_200_and_409s(pg_ctx: Context) -> None:
    _, _, annotation_id, base = _annotated_image(pg_ctx)
    app = create_app(pg_ctx.settings, ctx=pg_ctx)
    clients = [TestClient(app, base_url="http://testserver") for _ in range(6)]
    for c in clients:
        r = c.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        assert r.status_code == 200, r.text

    def put(i: int) -> int:
        body = {"base_version": base, "content": {"classes": ["c"]}, "message": f"tab {i}"}
        return clients[i].put(f"/api/annotations/{annotation_id}", json=body).status_code

    codes = _race(len(clients), put)
    assert Counter(codes) == {200: 1, 409: len(clients) - 1}
    with pg_ctx.db.read() as s:
        numbers = s.scalars(select(Revision.number).where(Revision.annotation_id == annotation_id))
        assert sorted(numbers) == [1, 2]
    for c in clients:
        c.close()


def test_writers_of_different_annotations_all_succeed(pg_ctx: Context) -> None:
    admin = user(pg_ctx, "admin", Role.ADMIN)
    people = [user(pg_ctx, f"u{i}", Role.ADMIN) for i in range(6)]
    project = create_project(pg_ctx, admin, "P")
    (image_id,) = import_paths(pg_ctx, None, project.id, [sample_file("CT_small.dcm")]).image_ids

    def save(i: int) -> int:
        view = ann_svc.save_annotation(pg_ctx, people[i], image_id, content=AnnotationContent())
        return view.annotation.id

    assert len(set(_race(len(people), save))) == len(people)


def test_concurrent_queue_claims_never_exceed_readers_per_image(pg_ctx: Context) -> None:
    """Eight annotators ask at once for three images wanting two readers: six claims."""
    study = make_study(pg_ctx)
    people = [user(pg_ctx, f"r{i}", Role.ANNOTATOR) for i in range(8)]
    for p in people:
        set_member(pg_ctx, study.admin, study.project_id, p.id, ProjectRole.ANNOTATOR)

    def claim(i: int) -> int | None:
        item = queue_svc.next_in_queue(pg_ctx, people[i], study.project_id)
        return item.image.id if item else None

    got = _race(len(people), claim)
    claimed = [g for g in got if g is not None]
    assert Counter(claimed) == {i: 2 for i in study.image_ids}
    assert got.count(None) == 2
    with pg_ctx.db.read() as s:
        for image_id in study.image_ids:
            assert len(queue_svc.image_readers(s, image_id)) == 2


def test_audit_chain_of_concurrent_writers_verifies(pg_ctx: Context) -> None:
    admin = user(pg_ctx, "admin", Role.ADMIN)
    with pg_ctx.db.read() as s:
        before = s.scalar(select(func.count()).select_from(AuditEvent)) or 0

    def write(i: int) -> None:
        for j in range(3):
            create_project(pg_ctx, admin, f"P{i}-{j}")

    _race(8, write)
    result = verify_audit(pg_ctx, admin)
    assert result.ok, result.message
    with pg_ctx.db.read() as s:
        ids = list(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
    assert len(ids) == before + 24
    assert ids == list(range(1, len(ids) + 1))  # no gaps, no duplicates
