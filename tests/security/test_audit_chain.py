"""The audit log's hash chain: built from real service calls, and every kind of tampering
with the table (edit, delete, reorder, truncate, rewrite) is detected."""

from __future__ import annotations

import itertools
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.schema import LabelSpec
from medlabel.core.errors import ConflictError
from medlabel.core.settings import Settings
from medlabel.security import audit
from medlabel.security.audit import GENESIS, AuditAction, Break, event_hash, verify_chain
from medlabel.security.audit.chain import check_rows
from medlabel.security.roles import ProjectRole, Role
from medlabel.services import annotations as ann_svc
from medlabel.services import projects as projects_svc
from medlabel.services import users as users_svc
from medlabel.services.context import Context, open_context
from medlabel.services.imports import import_paths
from medlabel.storage.db.models import AuditEvent, AuditHead
from tests.conftest import PASSWORD, sample_file


def _verify(ctx: Context, anchor: str | None = None) -> audit.VerifyResult:
    with ctx.db.read() as s:
        return verify_chain(s, anchor=anchor)


def _sql(ctx: Context, *statements: str) -> None:
    """Tamper with the table behind the application's back, as someone with DB access."""
    with ctx.db.engine.begin() as conn:
        for stmt in statements:
            conn.execute(text(stmt))


def _actions(ctx: Context) -> list[str]:
    with ctx.db.read() as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def _build(ctx: Context) -> None:
    """A log of about twenty events made by ordinary service calls."""
    admin = users_svc.principal_of(users_svc.create_user(ctx, "root", PASSWORD, Role.ADMIN))
    alice = users_svc.create_user(ctx, "alice", PASSWORD, Role.ANNOTATOR, actor=admin)
    users_svc.authenticate(ctx, "alice", PASSWORD)
    with pytest.raises(Exception, match="wrong username or password"):
        users_svc.authenticate(ctx, "alice", "not the password")
    project = projects_svc.create_project(ctx, admin, "Chest")
    projects_svc.add_labels(ctx, admin, project.id, [LabelSpec(name="nodule", kind="mask")])
    projects_svc.set_member(ctx, admin, project.id, alice.id, ProjectRole.ANNOTATOR)
    summary = import_paths(ctx, admin, project.id, [sample_file("CT_small.dcm")])
    who = users_svc.principal_of(alice)
    view = ann_svc.save_annotation(
        ctx, who, summary.image_ids[0], content=AnnotationContent(), mask=None
    )
    ann_svc.transition(ctx, who, view.annotation.id, "submit", view.annotation.version)
    users_svc.update_user(ctx, admin, alice.id, role=Role.REVIEWER)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A medlabel home holding the chained log, built once per module."""
    home = tmp_path_factory.mktemp("audit") / "home"
    ctx = open_context(Settings(home=home, preload_engines=[], import_workers=1))
    try:
        _build(ctx)
    finally:
        ctx.close()
    return home


@pytest.fixture
def chained(template: Path, settings: Settings) -> Iterator[Context]:
    """A fresh copy of the chained log, to tamper with (built anew in the test's own
    database on a PostgreSQL run: the template's log is in its SQLite file)."""
    shutil.copytree(template, settings.home)
    ctx = open_context(settings)
    if not ctx.db.is_sqlite:
        _build(ctx)
    yield ctx
    ctx.close()


def test_empty_log_verifies(ctx: Context) -> None:
    result = _verify(ctx)
    assert result.ok and result.rows == 0 and result.head_hash == GENESIS


def test_service_calls_build_a_valid_chain(chained: Context) -> None:
    actions = _actions(chained)
    for expected in (
        "user.create",
        "login",
        "login_failed",
        "project.create",
        "label.create",
        "member.set",
        "image.import",
        "annotation.save",
        "annotation.submit",
        "user.update",
    ):
        assert expected in actions
    result = _verify(chained)
    assert result.ok, result.message
    assert result.rows == len(actions) and result.head_id == len(actions)
    with chained.db.read() as s:
        rows = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        head = s.get(AuditHead, 1)
    assert [r.id for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert head is not None and head.last_hash == rows[-1].hash == result.head_hash
    # the service's actor, target and project are recorded
    created = next(r for r in rows if r.action == "project.create")
    assert created.actor == "root" and created.target_type == "project"
    assert created.project_id == int(created.target_id)


def test_hash_is_independent_of_how_it_is_computed(chained: Context) -> None:
    """The stored hash is reproducible from the documented canonical text."""
    with chained.db.read() as s:
        row = s.get(AuditEvent, 3)
        raw_details = s.execute(text("SELECT details FROM audit_events WHERE id = 3")).scalar()
    assert row is not None
    assert row.hash == event_hash(
        id=row.id,
        at=row.at,
        actor_id=row.actor_id,
        actor=row.actor,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        project_id=row.project_id,
        client=row.client,
        details=raw_details,
        prev_hash=row.prev_hash,
    )


def test_edited_row_is_detected(chained: Context) -> None:
    _sql(chained, """UPDATE audit_events SET details = '{"role":"admin"}' WHERE id = 4""")
    result = _verify(chained)
    assert not result.ok
    assert (result.broken_id, result.reason) == (4, Break.CONTENT)
    assert result.rows == 3  # rows before it are fine


@pytest.mark.parametrize(
    "column,value",
    [("actor", "'mallory'"), ("action", "'logout'"), ("at", "'2020-01-01 00:00:00.000000'")],
)
def test_any_edited_column_is_detected(chained: Context, column: str, value: str) -> None:
    _sql(chained, f"UPDATE audit_events SET {column} = {value} WHERE id = 5")
    result = _verify(chained)
    assert (result.ok, result.broken_id, result.reason) == (False, 5, Break.CONTENT)


def test_edit_with_recomputed_hash_breaks_the_next_link(chained: Context) -> None:
    with chained.db.read() as s:
        row = s.get(AuditEvent, 5)
    assert row is not None
    forged = event_hash(
        id=5,
        at=row.at,
        actor_id=row.actor_id,
        actor="mallory",
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        project_id=row.project_id,
        client=row.client,
        details='{"role":"admin"}',
        prev_hash=row.prev_hash,
    )
    _sql(
        chained,
        f"""UPDATE audit_events SET actor = 'mallory', details = '{{"role":"admin"}}',
            hash = '{forged}' WHERE id = 5""",
    )
    result = _verify(chained)
    assert (result.ok, result.broken_id, result.reason) == (False, 6, Break.ORDER)


def test_deleted_middle_row_is_detected(chained: Context) -> None:
    _sql(chained, "DELETE FROM audit_events WHERE id = 6")
    result = _verify(chained)
    assert (result.ok, result.broken_id, result.reason) == (False, 6, Break.MISSING)
    assert "6" in result.message


def test_deleted_first_row_is_detected(chained: Context) -> None:
    _sql(chained, "DELETE FROM audit_events WHERE id = 1")
    result = _verify(chained)
    assert (result.ok, result.broken_id, result.reason) == (False, 1, Break.MISSING)


def test_deleted_and_renumbered_rows_are_detected(chained: Context) -> None:
    """Closing the gap left by a deletion breaks the chain instead."""
    _sql(
        chained,
        "DELETE FROM audit_events WHERE id = 6",
        "UPDATE audit_events SET id = id - 1 WHERE id > 6",
    )
    result = _verify(chained)
    assert (result.ok, result.broken_id, result.reason) == (False, 6, Break.ORDER)


def test_swapped_rows_are_detected(chained: Context) -> None:
    _sql(
        chained,
        "UPDATE audit_events SET id = -1 WHERE id = 4",
        "UPDATE audit_events SET id = 4 WHERE id = 5",
        "UPDATE audit_events SET id = 5 WHERE id = -1",
    )
    result = _verify(chained)
    assert (result.ok, result.broken_id, result.reason) == (False, 4, Break.ORDER)


def test_truncated_tail_is_detected_by_the_head_row(chained: Context) -> None:
    total = len(_actions(chained))
    _sql(chained, f"DELETE FROM audit_events WHERE id > {total - 2}")
    result = _verify(chained)
    assert (result.ok, result.reason) == (False, Break.TAIL)
    assert result.broken_id == total - 1


def test_truncated_tail_with_forged_head_is_detected_only_by_an_anchor(chained: Context) -> None:
    anchor = _verify(chained).head_hash  # exported earlier (`medlabel audit head`)
    total = len(_actions(chained))
    with chained.db.read() as s:
        kept = s.get(AuditEvent, total - 2)
    assert kept is not None
    # a careful attacker also rewinds the head row
    _sql(
        chained,
        f"DELETE FROM audit_events WHERE id > {total - 2}",
        f"UPDATE audit_head SET last_id = {total - 2}, last_hash = '{kept.hash}'",
    )
    assert _verify(chained).ok  # the chain alone cannot tell
    result = _verify(chained, anchor=anchor)
    assert (result.ok, result.reason, result.broken_id) == (False, Break.ANCHOR, None)
    # an older anchor still in the chain passes
    assert _verify(chained, anchor=kept.hash).ok


def test_fully_rewritten_chain_is_detected_only_by_an_anchor(chained: Context) -> None:
    anchor = _verify(chained).head_hash
    with chained.db.read() as s:
        rows = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    # the attacker edits row 2 and recomputes every hash after it
    prev = GENESIS
    statements = []
    for r in rows:
        actor = "mallory" if r.id == 2 else r.actor
        raw = audit.log.canonical_json(r.details)
        h = event_hash(
            id=r.id,
            at=r.at,
            actor_id=r.actor_id,
            actor=actor,
            action=r.action,
            target_type=r.target_type,
            target_id=r.target_id,
            project_id=r.project_id,
            client=r.client,
            details=raw,
            prev_hash=prev,
        )
        statements.append(
            f"UPDATE audit_events SET actor = '{actor}', prev_hash = '{prev}', hash = '{h}' "
            f"WHERE id = {r.id}"
        )
        prev = h
    statements.append(f"UPDATE audit_head SET last_hash = '{prev}'")
    _sql(chained, *statements)
    assert _verify(chained).ok
    assert _verify(chained, anchor=anchor).reason == Break.ANCHOR


def test_edited_or_deleted_head_record_is_detected(chained: Context) -> None:
    _sql(chained, "UPDATE audit_head SET last_hash = '" + "f" * 64 + "'")
    result = _verify(chained)
    assert (result.ok, result.reason) == (False, Break.HEAD)
    _sql(chained, "DELETE FROM audit_head")
    result = _verify(chained)
    assert (result.ok, result.reason) == (False, Break.HEAD)
    assert "deleted" in result.message


def test_bad_anchor_is_refused(chained: Context) -> None:
    with pytest.raises(ValueError, match="64 hexadecimal"):
        _verify(chained, anchor="not-a-hash")


def test_verify_reads_in_chunks(chained: Context) -> None:
    with chained.db.read() as s:
        small = verify_chain(s, chunk=3)
    assert small.ok and small.rows == len(_actions(chained))


def test_check_rows_on_an_empty_stream_with_anchor() -> None:
    result = check_rows([], anchor="a" * 64)
    assert not result.ok and result.reason == Break.ANCHOR


def test_rolled_back_change_leaves_no_row(ctx: Context) -> None:
    admin = users_svc.principal_of(users_svc.create_user(ctx, "root", PASSWORD, Role.ADMIN))
    before = _verify(ctx)
    with pytest.raises(RuntimeError), ctx.db.write() as s:
        audit.record(s, admin, AuditAction.PROJECT_CREATE, target_type="project", target_id=9)
        raise RuntimeError("the change failed after it was recorded")
    # failing service calls leave nothing either
    with pytest.raises(ConflictError):
        users_svc.create_user(ctx, "root", PASSWORD, Role.ADMIN)
    with pytest.raises(ConflictError):
        users_svc.update_user(ctx, None, admin.id, role=Role.VIEWER)  # the last admin
    after = _verify(ctx)
    assert after.ok and (after.rows, after.head_hash) == (before.rows, before.head_hash)
    assert _actions(ctx) == ["user.create"]


def test_concurrent_appends_never_fork(ctx: Context) -> None:
    admin = users_svc.principal_of(users_svc.create_user(ctx, "root", PASSWORD, Role.ADMIN))
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(15):
                with ctx.db.write() as s:
                    audit.record(
                        s,
                        admin,
                        AuditAction.LABEL_UPDATE,
                        target_type="label",
                        target_id=n * 100 + i,
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = _verify(ctx)
    assert result.ok and result.rows == 1 + 4 * 15
    with ctx.db.read() as s:
        assert s.scalar(select(func.count(func.distinct(AuditEvent.prev_hash)))) == result.rows


def test_details_must_be_small_plain_json(ctx: Context) -> None:
    with ctx.db.write() as s:
        with pytest.raises(ValueError, match="JSON values only"):
            audit.record(s, None, AuditAction.LOGIN, details={"x": object()})
        with pytest.raises(ValueError, match="NaN"):
            audit.record(s, None, AuditAction.LOGIN, details={"x": float("nan")})
        with pytest.raises(ValueError, match="limited"):
            audit.record(s, None, AuditAction.LOGIN, details={"x": "y" * 5000})
        with pytest.raises(ValueError):
            audit.record(s, None, "no.such.action")


def test_control_characters_cannot_forge_field_boundaries(ctx: Context) -> None:
    with ctx.db.write() as s:
        event = audit.record(s, None, AuditAction.LOGIN, client="1.2.3.4\x1fevil\n")
    assert event.client == "1.2.3.4?evil?"
    assert _verify(ctx).ok


def test_every_annotation_transition_has_an_action() -> None:
    for t in ann_svc.Transition:
        AuditAction(f"annotation.{t.value}")
