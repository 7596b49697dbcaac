"""Coalescing of image reads, and where events come from (origin)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from medlabel.security.audit import (
    AuditAction,
    ImageReadLog,
    Origin,
    origin,
    origin_scope,
    record,
    verify_chain,
)
from medlabel.security.roles import Role
from medlabel.services.access import Principal
from medlabel.services.context import Context
from medlabel.storage.db.models import AuditEvent

ALICE = Principal(id=7, username="alice", role=Role.ANNOTATOR)
BOB = Principal(id=8, username="bob", role=Role.ANNOTATOR)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reads(ctx: Context) -> list[tuple[int | None, str, str]]:
    with ctx.db.read() as s:
        rows = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "image.read").order_by(AuditEvent.id)
        )
        return [(r.actor_id, r.target_id, r.details["kind"]) for r in rows]


def test_one_row_per_user_image_and_kind_per_window(ctx: Context) -> None:
    clock = Clock()
    log = ImageReadLog(ctx.db, window_seconds=600, clock=clock)
    assert log.note(ALICE, 1, 1, "slice") is True
    for _ in range(50):
        assert log.note(ALICE, 1, 1, "slice") is False
    assert log.note(ALICE, 1, 1, "volume") is True  # another kind
    assert log.note(ALICE, 2, 1, "slice") is True  # another image
    assert log.note(BOB, 1, 1, "slice") is True  # another user
    clock.now += 599
    assert log.note(ALICE, 1, 1, "slice") is False
    clock.now += 1  # the window is over
    assert log.note(ALICE, 1, 1, "slice") is True
    assert _reads(ctx) == [
        (7, "1", "slice"),
        (7, "1", "volume"),
        (7, "2", "slice"),
        (8, "1", "slice"),
        (7, "1", "slice"),
    ]
    with ctx.db.read() as s:
        assert verify_chain(s).ok


def test_window_zero_records_every_read(ctx: Context) -> None:
    log = ImageReadLog(ctx.db, window_seconds=0)
    for _ in range(3):
        assert log.note(ALICE, 1, 1, "thumbnail") is True
    assert len(_reads(ctx)) == 3


def test_unknown_kind_and_negative_window_are_refused(ctx: Context) -> None:
    with pytest.raises(ValueError):
        ImageReadLog(ctx.db, window_seconds=-1)
    with pytest.raises(ValueError):
        ImageReadLog(ctx.db).note(ALICE, 1, 1, "pixels")


def test_concurrent_reads_write_one_row(ctx: Context) -> None:
    log = ImageReadLog(ctx.db, window_seconds=600)
    written: list[bool] = []
    barrier = threading.Barrier(8)

    def scroll() -> None:
        barrier.wait()
        written.extend(log.note(ALICE, 3, 1, "slice") for _ in range(200))

    threads = [threading.Thread(target=scroll) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert written.count(True) == 1 and len(written) == 1600
    assert _reads(ctx) == [(7, "3", "slice")]


def test_failed_write_is_retried_on_the_next_read(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = ImageReadLog(ctx.db, window_seconds=600)
    real = ctx.db.write

    def broken() -> object:
        raise RuntimeError("database is gone")

    monkeypatch.setattr(ctx.db, "write", broken)
    with pytest.raises(RuntimeError):
        log.note(ALICE, 1, 1, "slice")
    monkeypatch.setattr(ctx.db, "write", real)
    assert log.note(ALICE, 1, 1, "slice") is True
    assert len(_reads(ctx)) == 1


def test_memory_is_pruned(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    log = ImageReadLog(ctx.db, window_seconds=10, clock=clock)
    monkeypatch.setattr(ImageReadLog, "PRUNE_AT", 5)
    for i in range(5):
        log.note(ALICE, i, 1, "slice")
    clock.now += 11
    log.note(ALICE, 99, 1, "slice")
    assert len(log._opened) <= 6
    log.note(ALICE, 100, 1, "slice")
    assert len(log._opened) == 2


def test_repeated_reads_cost_microseconds(ctx: Context) -> None:
    """The slice path must not slow down: after the first read, a note is a dict lookup."""
    log = ImageReadLog(ctx.db, window_seconds=600)
    log.note(ALICE, 1, 1, "slice")
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        log.note(ALICE, 1, 1, "slice")
    per_call = (time.perf_counter() - start) / n
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} µs per repeated read"


def test_origin_is_scoped(ctx: Context) -> None:
    assert origin() == Origin()
    with origin_scope(Origin(client="cli:box", operator="os:ops")):
        with ctx.db.write() as s:
            event = record(s, None, AuditAction.PROJECT_CREATE)
        assert (event.client, event.actor, event.actor_id) == ("cli:box", "os:ops", None)
        with ctx.db.write() as s:
            event = record(s, ALICE, AuditAction.LOGIN)
        assert (event.client, event.actor, event.actor_id) == ("cli:box", "alice", 7)
    assert origin() == Origin()
