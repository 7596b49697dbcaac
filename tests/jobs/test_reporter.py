"""Reporters: progress and log lines batched into the job's row, cancellation."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select

from medlabel.jobs import reporter as reporter_mod
from medlabel.jobs import store
from medlabel.jobs.reporter import DbReporter, JobCancelled, MemoryReporter
from medlabel.services.context import Context
from medlabel.storage.db.models import Job, JobLog
from tests.jobs.conftest import job_row


def _running_job(ctx: Context) -> int:
    job = store.create(ctx.db, kind="test.steps", params={}, project_id=None, created_by=None)
    assert store.claim(ctx.db, job.id, "elsewhere:1") is not None
    return job.id


def _lines(ctx: Context, job_id: int) -> list[str]:
    with ctx.db.read() as s:
        return list(
            s.scalars(select(JobLog.line).where(JobLog.job_id == job_id).order_by(JobLog.seq))
        )


def test_memory_reporter_and_the_stage_callback() -> None:
    r = MemoryReporter()
    r.progress(1, 4, "reading")
    r.progress(2, 4)
    r.log("hello", "warning")
    assert r.updates == [(1.0, 4, "reading"), (2.0, 4, "reading")]
    assert r.lines == [("warning", "hello")]
    r.stage_progress("writing", 3, 4)
    r.cancel()
    with pytest.raises(JobCancelled):
        r.stage_progress("writing", 4, 4)
    assert r.updates[-1] == (4.0, 4, "writing")


def test_cancelled_is_not_swallowed_by_except_exception() -> None:
    r = MemoryReporter()
    r.cancel()
    with pytest.raises(JobCancelled):
        try:
            r.check_cancelled()
        except Exception:  # what careless job code does
            pytest.fail("JobCancelled must not be an Exception")


def test_a_tight_loop_writes_once_per_interval(ctx: Context) -> None:
    job_id = _running_job(ctx)
    updates: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE jobs"):
            updates.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", count)
    try:
        r = DbReporter(ctx.db, job_id, 1, min_interval=3600)
        for i in range(1, 1001):
            r.log(f"line {i}")
            r.progress(i, 1000, "counting")
        assert len(updates) <= 3  # the first call, and two batches of 500 lines
        mid = job_row(ctx, job_id)
        assert mid.progress_done < 1000
        r.flush()
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", count)
    job = job_row(ctx, job_id)
    assert (job.progress_done, job.progress_total, job.progress_message) == (1000, 1000, "counting")
    lines = _lines(ctx, job_id)
    assert lines[-1000:] == [f"line {i}" for i in range(1, 1001)]
    with ctx.db.read() as s:
        seqs = list(s.scalars(select(JobLog.seq).where(JobLog.job_id == job_id)))
    assert sorted(seqs) == list(range(1, len(seqs) + 1))


def test_log_lines_are_capped(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reporter_mod, "MAX_LINES", 5)
    job_id = _running_job(ctx)
    r = DbReporter(ctx.db, job_id, 1, min_interval=0)
    r.log("x" * (reporter_mod.MAX_LINE_CHARS + 100))
    r.log("two\nthree")  # one line per line
    for i in range(10):
        r.log(f"more {i}")
    r.flush()
    mine = _lines(ctx, job_id)[2:]  # after "created" and "started"
    assert len(mine[0]) == reporter_mod.MAX_LINE_CHARS
    assert mine[1:3] == ["two", "three"]
    assert mine[-1].startswith("(more than 5 log lines")
    assert len(mine) == 6


def test_a_cancel_flag_set_elsewhere_reaches_the_job(ctx: Context) -> None:
    job_id = _running_job(ctx)
    r = DbReporter(ctx.db, job_id, 1, min_interval=3600)
    r.check_cancelled()
    with ctx.db.write() as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.cancel_requested = True
    r.flush()
    assert r.cancelled() and r.cancel_requested
    with pytest.raises(JobCancelled):
        r.check_cancelled()


def test_a_reporter_whose_job_was_taken_away_stops_writing(ctx: Context) -> None:
    job_id = _running_job(ctx)
    r = DbReporter(ctx.db, job_id, 1, min_interval=0)
    assert store.finish(ctx.db, job_id, 1, store.JobState.FAILED, error=store.INTERRUPTED)
    before = _lines(ctx, job_id)
    r.progress(5, 10, "still going")
    r.log("too late")
    assert r.lost and r.cancelled()
    assert _lines(ctx, job_id) == before
    assert job_row(ctx, job_id).progress_done == 0
