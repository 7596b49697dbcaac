"""Job kinds for the Ray executor's tests, at module level so that Ray workers import them
(the test cluster has the repository on its ``PYTHONPATH``). They talk to the test
through files in a shared folder, since they run in other processes."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from medlabel.jobs import JobEnv, JobKind, JobKinds, Reporter
from medlabel.services.context import Context


class StepsParams(BaseModel):
    steps: int = Field(default=3, ge=1, le=100_000)
    #: raise ValueError at this step
    fail_at: int | None = None
    #: before the first step, wait (checking for cancellation) until this file exists
    wait_for: str | None = None
    #: seconds per step
    pause: float = 0.0


def _steps(env: JobEnv, params: StepsParams, reporter: Reporter) -> dict[str, Any]:
    reporter.log(f"attempt {env.job.attempt} in process {os.getpid()}")
    deadline = time.monotonic() + 120
    if params.wait_for:
        while not Path(params.wait_for).exists() and time.monotonic() < deadline:
            reporter.progress(0, params.steps, "waiting")
            reporter.check_cancelled()
            time.sleep(0.02)
    for i in range(params.steps):
        if params.fail_at == i:
            raise ValueError(f"step {i} went wrong")
        time.sleep(params.pause)
        reporter.progress(i + 1, params.steps, f"step {i + 1}")
        reporter.check_cancelled()
    return {"steps": params.steps, "pid": os.getpid()}


@dataclass(frozen=True)
class Counting:
    """A worker factory that leaves a file per build (a "model load") in ``folder``."""

    folder: str

    def __call__(self, ctx: Context) -> _CountingWorker:
        name = f"load-{os.getpid()}-{uuid.uuid4().hex}"
        (Path(self.folder) / name).write_text(str(os.getpid()))
        return _CountingWorker()


class _CountingWorker:
    def __call__(self, batch: list[int]) -> list[tuple[int, int]]:
        time.sleep(0.05)  # long enough that both workers get batches
        return [(i * i, os.getpid()) for i in batch]


class BatchParams(BaseModel):
    items: int = Field(default=20, ge=0)
    batch_size: int = Field(default=3, ge=1)
    folder: str


def _batches(env: JobEnv, params: BatchParams, reporter: Reporter) -> dict[str, Any]:
    seen: list[list[int]] = []
    with env.map_batches(
        Counting(params.folder),
        list(range(params.items)),
        batch_size=params.batch_size,
        cancelled=reporter.cancelled,
    ) as results:
        for n, (item, (square, pid)) in enumerate(results, 1):
            assert square == item * item
            seen.append([item, pid])
            reporter.progress(n, params.items, "items")
    return {"seen": seen}


def register(kinds: JobKinds) -> None:
    kinds.register(JobKind(name="ray.steps", params=StepsParams, run=_steps, needs_project=False))
    kinds.register(
        JobKind(
            name="ray.resumable",
            params=StepsParams,
            run=_steps,
            needs_project=False,
            resumable=True,
        )
    )
    kinds.register(
        JobKind(name="ray.batches", params=BatchParams, run=_batches, needs_project=False)
    )
