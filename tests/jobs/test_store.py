"""Recovery after a restart: jobs left running by a dead process are failed as
interrupted, or re-queued when their kind is resumable; queued jobs run again; jobs of
live processes are left alone."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from collections.abc import Callable

from sqlalchemy import select

from medlabel.core.ids import utcnow
from medlabel.jobs import store
from medlabel.services import jobs as svc
from medlabel.services.context import Context
from medlabel.storage.db.models import Job, JobLog
from tests.jobs.conftest import Probe, job_row, register_test_kinds, wait_state

HOST = socket.gethostname()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _left_running(ctx: Context, worker: str, *, kind: str = "test.steps", **params: object) -> int:
    """A job some process claimed and then stopped caring about."""
    job = store.create(ctx.db, kind=kind, params=params, project_id=None, created_by=None)
    assert store.claim(ctx.db, job.id, worker) is not None
    return job.id


def _age(ctx: Context, job_id: int, seconds: float) -> None:
    with ctx.db.write() as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.heartbeat_at = utcnow() - dt.timedelta(seconds=seconds)


def _restart(make: Callable[[], Context], probe: Probe) -> Context:
    ctx = make()
    register_test_kinds(ctx.job_kinds, probe)
    ctx.start_jobs()
    return ctx


def _lines(ctx: Context, job_id: int) -> list[str]:
    with ctx.db.read() as s:
        return list(s.scalars(select(JobLog.line).where(JobLog.job_id == job_id)))


def test_a_job_of_a_dead_process_fails_as_interrupted(
    ctx: Context, probe: Probe, other_context: Callable[[], Context]
) -> None:
    job_id = _left_running(ctx, f"{HOST}:{_dead_pid()}")
    new = _restart(other_context, probe)
    job = job_row(new, job_id)
    assert job.state == "failed" and job.error == "interrupted by a restart"
    assert job.finished_at is not None
    assert any(
        line.startswith("interrupted by a restart: its process") for line in _lines(new, job_id)
    )
    assert probe.attempts == []


def test_a_job_of_this_process_that_no_runner_has_fails_once_stale(
    ctx: Context, probe: Probe, other_context: Callable[[], Context]
) -> None:
    job_id = _left_running(ctx, store.worker_id())  # e.g. a closed Context's
    new = _restart(other_context, probe)
    assert job_row(new, job_id).state == "running"  # it may be about to start
    new.close()
    _age(ctx, job_id, ctx.settings.job_stale_seconds + 1)
    _restart(other_context, probe)
    assert job_row(ctx, job_id).state == "failed"


def test_other_hosts_count_as_dead_only_after_their_heartbeat_goes_stale(
    ctx: Context, probe: Probe, other_context: Callable[[], Context]
) -> None:
    fresh = _left_running(ctx, "another-host:4242")
    stale = _left_running(ctx, "another-host:4243")
    _age(ctx, stale, ctx.settings.job_stale_seconds + 60)
    new = _restart(other_context, probe)
    assert job_row(new, fresh).state == "running"
    job = job_row(new, stale)
    assert job.state == "failed" and job.error == "interrupted by a restart"
    assert any("no sign of life from another-host:4243" in line for line in _lines(new, stale))


def test_a_live_job_of_another_context_in_this_process_is_left_alone(
    ctx: Context, probe: Probe, other_context: Callable[[], Context]
) -> None:
    ctx.start_jobs()
    job_id = svc.submit_job(ctx, None, "test.steps", {"wait": True}).job.id
    assert probe.started.wait(20)
    new = _restart(other_context, probe)
    assert job_row(new, job_id).state == "running"
    probe.release.set()
    assert wait_state(ctx, job_id, "succeeded", "failed").state == "succeeded"


def test_a_resumable_job_is_requeued_and_runs_again_until_its_attempts_run_out(
    ctx: Context, probe: Probe, other_context: Callable[[], Context]
) -> None:
    probe.release.set()
    job_id = _left_running(ctx, f"{HOST}:{_dead_pid()}", kind="test.resumable")
    new = _restart(other_context, probe)
    job = wait_state(new, job_id, "succeeded", "failed")
    assert job.state == "succeeded" and job.attempt == 2
    assert probe.attempts == [(job_id, 2)]
    lines = _lines(new, job_id)
    assert "attempt 2 queued: resuming after a restart" in lines

    # at max_attempts (2) a second interruption is final
    new.close()  # (so that no executor settles the job before it is set up)
    last = _left_running(new, f"{HOST}:{_dead_pid()}", kind="test.resumable")
    with new.db.write() as s:
        row = s.get(Job, last)
        assert row is not None
        row.attempt = 2
    again = _restart(other_context, probe)
    assert job_row(again, last).state == "failed"


def test_queued_jobs_left_behind_run_at_the_next_start(
    ctx: Context, probe: Probe, other_context: Callable[[], Context]
) -> None:
    job = store.create(ctx.db, kind="test.steps", params={}, project_id=None, created_by=None)
    new = _restart(other_context, probe)
    assert wait_state(new, job.id, "succeeded", "failed").state == "succeeded"


def test_jobs_of_unknown_kinds_fail_instead_of_staying_queued(
    ctx: Context, probe: Probe, other_context: Callable[[], Context]
) -> None:
    job = store.create(ctx.db, kind="retired.kind", params={}, project_id=None, created_by=None)
    new = _restart(other_context, probe)
    done = wait_state(new, job.id, "failed", "succeeded")
    assert done.error is not None and "no job kind named 'retired.kind'" in done.error


def test_deleting_a_project_deletes_its_jobs(ctx: Context, probe: Probe) -> None:
    from medlabel.services.projects import create_project, delete_project

    project = create_project(ctx, None, "Doomed")
    job = store.create(
        ctx.db, kind="test.project", params={}, project_id=project.id, created_by=None
    )
    delete_project(ctx, None, project.id)
    with ctx.db.read() as s:
        assert s.get(Job, job.id) is None
        assert s.scalars(select(JobLog).where(JobLog.job_id == job.id)).first() is None


def test_orphan_rules() -> None:
    now = utcnow()
    job = Job(id=7, kind="k", state="running", created_at=now, heartbeat_at=now)

    def reason(running_here: set[int]) -> str | None:
        return store.orphan_reason(
            job, now=now, stale_seconds=60.0, running_here=running_here, host="h", pid=10
        )

    job.worker = "h:10"  # this process
    assert reason({7}) is None
    assert reason(set()) is None  # not stale yet
    job.worker = f"h:{os.getpid()}"  # another process on this host, alive
    assert reason(set()) is None
    job.worker = "elsewhere:10"
    assert reason(set()) is None
    job.heartbeat_at = now - dt.timedelta(seconds=61)
    assert reason(set()) == "no sign of life from elsewhere:10 for 61 s"
    job.worker = "h:10"
    assert reason({7}) is None
    assert reason(set()) == "no sign of life from h:10 for 61 s"
