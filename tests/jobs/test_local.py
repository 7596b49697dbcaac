"""The in-process executor and the runner: success, failure, cancellation, retry,
shutdown (tests/jobs/conftest.py registers the test kinds)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from medlabel.core.errors import ConflictError
from medlabel.jobs.local import LocalExecutor
from medlabel.services import jobs as svc
from medlabel.services.context import Context
from medlabel.storage.db.models import Job, JobLog
from tests.jobs.conftest import Probe, job_row, register_test_kinds, wait_for, wait_state


def _log(ctx: Context, job_id: int) -> list[tuple[int, str, str]]:
    with ctx.db.read() as s:
        rows = s.scalars(select(JobLog).where(JobLog.job_id == job_id).order_by(JobLog.seq))
        return [(r.attempt, r.level, r.line) for r in rows]


def _submit(ctx: Context, **params: object) -> int:
    return svc.submit_job(ctx, None, "test.steps", params).job.id


def test_a_job_runs_reports_progress_and_keeps_its_log(ctx: Context, running: Probe) -> None:
    job_id = _submit(ctx, steps=4)
    job = wait_state(ctx, job_id, "succeeded", "failed")
    assert job.state == "succeeded", job.error
    assert job.result == {"steps": 4}
    assert (job.progress_done, job.progress_total, job.progress_message) == (4, 4, "step 4")
    assert job.started_at and job.finished_at and job.finished_at >= job.started_at
    assert job.error is None and job.attempt == 1 and job.worker
    lines = [line for _, _, line in _log(ctx, job_id)]
    assert lines[0] == "test.steps job created"
    assert lines[1].startswith("attempt 1 started on ")
    assert f"attempt 1 of job {job_id}" in lines and lines[-1] == "succeeded"
    assert job.params == {"steps": 4, "fail_at": None, "wait": False}  # normalised


def test_a_failure_keeps_a_one_line_error_and_the_traceback_in_the_log(
    ctx: Context, running: Probe
) -> None:
    job_id = _submit(ctx, steps=3, fail_at=1)
    job = wait_state(ctx, job_id, "failed", "succeeded")
    assert job.state == "failed"
    assert job.error == "ValueError: step 1 went wrong"
    assert job.progress_done == 1  # the step before the failure
    log = _log(ctx, job_id)
    tracebacks = [line for _, level, line in log if "Traceback" in line]
    assert tracebacks and all(level == "error" for _, level, line in log if "Traceback" in line)
    assert log[-1] == (1, "error", "failed: ValueError: step 1 went wrong")


def test_cancelling_a_queued_job_is_immediate_and_it_never_runs(
    ctx: Context, running: Probe
) -> None:
    assert ctx.settings.job_workers == 1
    first = _submit(ctx, wait=True)
    assert running.started.wait(20)
    second = _submit(ctx)
    assert job_row(ctx, second).state == "queued"
    view = svc.cancel_job(ctx, None, second)
    assert view.job.state == "cancelled" and view.job.finished_at is not None
    running.release.set()
    assert wait_state(ctx, first, "succeeded").state == "succeeded"
    wait_for(lambda: second not in _pending(ctx), what="the executor to drop the job")
    assert [job for job, _ in running.attempts] == [first]
    assert job_row(ctx, second).state == "cancelled"
    with pytest.raises(ConflictError, match="already cancelled"):
        svc.cancel_job(ctx, None, second)


def _pending(ctx: Context) -> set[int]:
    executor = ctx.executor
    assert isinstance(executor, LocalExecutor)
    return executor.pending()


def test_cancelling_a_running_job_stops_it_at_its_next_check(ctx: Context, running: Probe) -> None:
    job_id = _submit(ctx, wait=True)
    assert running.started.wait(20)
    view = svc.cancel_job(ctx, None, job_id)
    assert view.job.state in ("running", "cancelled") and view.job.cancel_requested
    job = wait_state(ctx, job_id, "cancelled", "succeeded", "failed")
    assert job.state == "cancelled" and job.error is None and job.finished_at
    lines = [line for _, _, line in _log(ctx, job_id)]
    assert "cancellation requested by the operator" in lines and lines[-1] == "cancelled"


def test_a_cancel_flag_set_by_another_process_reaches_the_job(ctx: Context, running: Probe) -> None:
    job_id = _submit(ctx, wait=True)
    assert running.started.wait(20)
    with ctx.db.write() as s:  # what `medlabel jobs cancel` in another process does
        job = s.get(Job, job_id)
        assert job is not None
        job.cancel_requested = True
    assert wait_state(ctx, job_id, "cancelled", "succeeded").state == "cancelled"


def test_retry_runs_a_cancelled_or_failed_job_again_as_a_new_attempt(
    ctx: Context, running: Probe
) -> None:
    job_id = _submit(ctx, wait=True)
    assert running.started.wait(20)
    svc.cancel_job(ctx, None, job_id)
    wait_state(ctx, job_id, "cancelled")
    running.release.set()
    view = svc.retry_job(ctx, None, job_id)
    assert view.job.attempt == 2 and not view.job.cancel_requested
    job = wait_state(ctx, job_id, "succeeded", "failed", "cancelled")
    assert job.state == "succeeded" and job.attempt == 2 and job.error is None
    assert running.attempts == [(job_id, 1), (job_id, 2)]
    log = _log(ctx, job_id)
    assert (2, "info", "attempt 2 queued: retry by the operator") in log
    assert {a for a, _, _ in log} == {1, 2}
    with pytest.raises(ConflictError, match="only failed or cancelled jobs can be retried"):
        svc.retry_job(ctx, None, job_id)


def test_a_shutdown_fails_a_running_job_or_requeues_a_resumable_one(
    ctx: Context, running: Probe, other_context: Callable[[], Context]
) -> None:
    plain = _submit(ctx, wait=True)
    assert running.started.wait(20)
    running.started.clear()
    resumable = svc.submit_job(ctx, None, "test.resumable", {"wait": True}).job.id
    ctx.close()  # the server stops: the running job is asked to stop
    job = job_row(ctx, plain)
    assert job.state == "failed" and job.error == "interrupted by a shutdown"
    assert job_row(ctx, resumable).state == "queued"  # never started: stays queued

    second = other_context()
    register_test_kinds(second.job_kinds, running)
    second.start_jobs()  # picks up the queued job
    assert running.started.wait(20)
    second.close()  # this time it was running: a resumable kind goes back to the queue
    job = job_row(second, resumable)
    assert job.state == "queued" and job.attempt == 2 and job.error is None
    lines = [line for _, _, line in _log(second, resumable)]
    assert "attempt 2 queued: resuming after a shutdown" in lines

    running.release.set()
    third = other_context()
    register_test_kinds(third.job_kinds, running)
    third.start_jobs()
    job = wait_state(third, resumable, "succeeded", "failed")
    assert job.state == "succeeded" and job.attempt == 2
