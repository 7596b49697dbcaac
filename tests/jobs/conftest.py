"""Test job kinds (registered only here) and helpers to wait for jobs without sleeping
blindly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from medlabel.core.errors import InvalidInputError
from medlabel.core.settings import Settings
from medlabel.jobs import JobEnv, JobKind, JobKinds, Reporter
from medlabel.services.context import Context, open_context
from medlabel.storage.db.models import Job

TIMEOUT = 20.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Fast heartbeats, so cancel flags set from "another process" arrive quickly."""
    return Settings(
        home=tmp_path / "home",
        preload_engines=[],
        job_heartbeat_seconds=0.05,
        job_stale_seconds=5.0,
    )


class StepParams(BaseModel):
    steps: int = Field(default=3, ge=1, le=1000)
    #: raise ValueError at this step
    fail_at: int | None = None
    #: at the first step, signal `probe.started` and wait for `probe.release`
    wait: bool = False


@dataclass
class Probe:
    """What the test kinds saw, and the gate a waiting job stops at."""

    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    attempts: list[tuple[int, int]] = field(default_factory=list)


def _steps(probe: Probe) -> Callable[[JobEnv, StepParams, Reporter], dict[str, Any]]:
    def run(env: JobEnv, params: StepParams, reporter: Reporter) -> dict[str, Any]:
        probe.attempts.append((env.job.id, env.job.attempt))
        reporter.log(f"attempt {env.job.attempt} of job {env.job.id}")
        for i in range(params.steps):
            if params.wait and i == 0:
                probe.started.set()
                while not probe.release.wait(0.01):
                    reporter.check_cancelled()
            if params.fail_at == i:
                raise ValueError(f"step {i} went wrong")
            reporter.progress(i + 1, params.steps, f"step {i + 1}")
            reporter.check_cancelled()
        return {"steps": params.steps}

    return run


class CheckedParams(BaseModel):
    ok: bool = True


def _checked_run(env: JobEnv, params: CheckedParams, reporter: Reporter) -> dict[str, Any]:
    return {"project": env.project_id}


def _check(ctx: Context, project_id: int | None, params: CheckedParams) -> None:
    if not params.ok:
        raise InvalidInputError("the check refused this request")


def register_test_kinds(kinds: JobKinds, probe: Probe) -> None:
    run = _steps(probe)
    kinds.register(JobKind(name="test.steps", params=StepParams, run=run, needs_project=False))
    kinds.register(
        JobKind(
            name="test.resumable",
            params=StepParams,
            run=run,
            needs_project=False,
            resumable=True,
            max_attempts=2,
        )
    )
    kinds.register(
        JobKind(name="test.project", params=CheckedParams, run=_checked_run, check=_check)
    )
    kinds.register(JobKind(name="test.project.steps", params=StepParams, run=run))


@pytest.fixture
def probe(ctx: Context) -> Probe:
    """The test kinds, registered on ``ctx`` (which does not run jobs)."""
    p = Probe()
    register_test_kinds(ctx.job_kinds, p)
    return p


@pytest.fixture
def running(ctx: Context, probe: Probe) -> Probe:
    """The test kinds, and ``ctx`` running jobs like a server."""
    ctx.start_jobs()
    return probe


@pytest.fixture
def other_context(settings: Settings) -> Iterator[Callable[[], Context]]:
    """Open more Contexts on the same home (a "restarted server"), closed at the end."""
    opened: list[Context] = []

    def make() -> Context:
        c = open_context(settings)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


def wait_for(predicate: Callable[[], Any], *, timeout: float = TIMEOUT, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)


def job_row(ctx: Context, job_id: int) -> Job:
    with ctx.db.read() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def wait_state(ctx: Context, job_id: int, *states: str, timeout: float = TIMEOUT) -> Job:
    """Wait until the job is in one of ``states``; the row then."""
    job: Job = wait_for(
        lambda: (j := job_row(ctx, job_id)).state in states and j,
        timeout=timeout,
        what=f"job {job_id} to become {'/'.join(states)}",
    )
    return job
