"""The Ray executor on a real local Ray cluster (127.0.0.1, 2 CPUs): jobs run in Ray
worker processes with their own Context on the same SQLite database and blob folder;
progress, logs, failures and cancellation go through the job rows; batches are spread
over actors that each build their worker once."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from medlabel.core.errors import ConfigurationError, MissingDependencyError
from medlabel.core.settings import Settings
from medlabel.services.context import Context, open_context
from medlabel.services.jobs import cancel_job, job_logs, run_in_foreground, submit_job
from tests.jobs import ray_kinds
from tests.jobs.conftest import job_row, wait_for, wait_state
from tests.jobs.test_train_kind import FAST, World, _need_train_extra
from tests.support.ray_cluster import ray_cluster, ray_executable

pytestmark = [pytest.mark.services, pytest.mark.slow]

#: jobs on the cluster start worker processes (imports take seconds on 2 busy cores)
TIMEOUT = 120.0


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    with ray_cluster(num_cpus=2) as address:
        yield address


def _settings(home: Path, address: str) -> Settings:
    return Settings(
        home=home,
        preload_engines=[],
        job_heartbeat_seconds=0.2,
        job_stale_seconds=5.0,
        ray_address=address,
    )


@pytest.fixture
def settings(tmp_path: Path, ray_address: str) -> Settings:
    return _settings(tmp_path / "home", ray_address)


@pytest.fixture
def ray_ctx(ctx: Context) -> Context:
    """``ctx`` with the test kinds, running jobs on the cluster."""
    ray_kinds.register(ctx.job_kinds)
    ctx.start_jobs()
    return ctx


def _lines(ctx: Context, job_id: int) -> list[str]:
    return [row.line for row in job_logs(ctx, None, job_id)]


# -- configuration ----------------------------------------------------------------------


def test_context_picks_the_ray_executor(ctx: Context) -> None:
    from medlabel.jobs.ray_executor import RayExecutor

    assert isinstance(ctx.executor, RayExecutor)
    assert ctx.executor.address == ctx.settings.ray_address


def test_unreachable_address_is_a_configuration_error(tmp_path: Path) -> None:
    ray_executable()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = open_context(_settings(tmp_path / "home", f"127.0.0.1:{port}"))
    try:
        with pytest.raises(ConfigurationError, match="cannot reach the Ray cluster"):
            c.start_jobs()
    finally:
        c.close()


def test_malformed_address(tmp_path: Path) -> None:
    ray_executable()
    c = open_context(_settings(tmp_path / "home", "nonsense"))
    try:
        with pytest.raises(ConfigurationError, match="not host:port"):
            _ = c.executor
    finally:
        c.close()


def test_missing_ray_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medlabel.jobs.ray_executor import RayExecutor

    monkeypatch.setitem(sys.modules, "ray", None)  # "not installed"
    c = open_context(_settings(tmp_path / "home", "127.0.0.1:6380"))
    try:
        with pytest.raises(MissingDependencyError, match=r"medlabel\[ray\]"):
            RayExecutor(c)
    finally:
        c.close()


# -- jobs on the cluster ----------------------------------------------------------------


def test_a_job_runs_in_a_worker_with_progress_and_logs(ray_ctx: Context) -> None:
    job = submit_job(ray_ctx, None, "ray.steps", {"steps": 4})
    row = wait_state(ray_ctx, job.job.id, "succeeded", timeout=TIMEOUT)
    assert row.result["steps"] == 4
    assert row.result["pid"] != os.getpid()  # a Ray worker ran it
    assert (row.progress_done, row.progress_total, row.progress_message) == (4, 4, "step 4")
    assert row.worker and row.worker.endswith(f":{row.result['pid']}")
    lines = _lines(ray_ctx, job.job.id)
    assert f"attempt 1 in process {row.result['pid']}" in lines
    assert lines[-1] == "succeeded"


def test_a_failing_job_fails_with_its_error(ray_ctx: Context) -> None:
    job = submit_job(ray_ctx, None, "ray.steps", {"steps": 3, "fail_at": 1})
    row = wait_state(ray_ctx, job.job.id, "failed", "succeeded", timeout=TIMEOUT)
    assert row.state == "failed"
    assert row.error == "ValueError: step 1 went wrong"
    assert row.progress_done == 1
    text = "\n".join(_lines(ray_ctx, job.job.id))
    assert "Traceback" in text and "step 1 went wrong" in text


def test_cancel_a_running_job(ray_ctx: Context, tmp_path: Path) -> None:
    never = tmp_path / "never"
    job = submit_job(ray_ctx, None, "ray.steps", {"wait_for": str(never)})
    wait_for(
        lambda: job_row(ray_ctx, job.job.id).progress_message == "waiting",
        timeout=TIMEOUT,
        what="the job to run on a worker",
    )
    cancel_job(ray_ctx, None, job.job.id)
    row = wait_state(ray_ctx, job.job.id, "cancelled", "failed", "succeeded", timeout=30)
    assert row.state == "cancelled" and row.error is None
    assert "cancelled" in _lines(ray_ctx, job.job.id)


def test_cancel_a_job_waiting_for_a_slot(ray_ctx: Context, tmp_path: Path) -> None:
    """One job at a time (``job_workers`` 1): the second waits, cancelled before it runs."""
    gate = tmp_path / "gate"
    first = submit_job(ray_ctx, None, "ray.steps", {"wait_for": str(gate)})
    second = submit_job(ray_ctx, None, "ray.steps", {"steps": 1})
    wait_state(ray_ctx, first.job.id, "running", timeout=TIMEOUT)
    cancel_job(ray_ctx, None, second.job.id)
    assert job_row(ray_ctx, second.job.id).state == "cancelled"
    gate.write_text("go")
    assert wait_state(ray_ctx, first.job.id, "succeeded", timeout=TIMEOUT).state == "succeeded"
    row = job_row(ray_ctx, second.job.id)
    assert row.state == "cancelled" and row.started_at is None
    assert second.job.id not in ray_ctx.executor.pending()  # type: ignore[attr-defined]


def test_two_workers_split_the_batches(ctx: Context, tmp_path: Path) -> None:
    from medlabel.jobs.ray_executor import RayExecutor

    ray_kinds.register(ctx.job_kinds)
    ctx._executor = RayExecutor(ctx, batch_workers=2)
    ctx.start_jobs()
    folder = tmp_path / "loads"
    folder.mkdir()
    params = {"items": 20, "batch_size": 3, "folder": str(folder)}
    job = submit_job(ctx, None, "ray.batches", params)
    row = wait_state(ctx, job.job.id, "succeeded", "failed", timeout=TIMEOUT)
    assert row.state == "succeeded", row.error
    seen = row.result["seen"]
    assert sorted(item for item, _ in seen) == list(range(20))  # each item once
    pids = {pid for _, pid in seen}
    loads = [p.read_text() for p in folder.iterdir()]
    assert len(pids) == 2 and os.getpid() not in pids  # two actors did the work
    assert sorted(loads) == sorted(str(p) for p in pids)  # each built its worker once
    assert row.progress_done == 20


def test_batches_run_inline_on_the_local_executor(tmp_path: Path) -> None:
    """The same kind without Ray: one worker, built once, in the job's process."""
    c = open_context(Settings(home=tmp_path / "home", preload_engines=[]))
    try:
        ray_kinds.register(c.job_kinds)
        folder = tmp_path / "loads"
        folder.mkdir()
        params = {"items": 7, "batch_size": 3, "folder": str(folder)}
        job = run_in_foreground(c, None, "ray.batches", params)
        assert job.job.state == "succeeded", job.job.error
        seen = job.job.result["seen"]
        assert [item for item, _ in seen] == list(range(7))
        assert {pid for _, pid in seen} == {os.getpid()}
        assert [p.read_text() for p in folder.iterdir()] == [str(os.getpid())]
    finally:
        c.close()


def test_shutdown_requeues_a_resumable_job_and_a_restart_runs_it(
    settings: Settings, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    first = open_context(settings)
    ray_kinds.register(first.job_kinds)
    first.start_jobs()
    job = submit_job(first, None, "ray.resumable", {"steps": 2, "wait_for": str(gate)})
    wait_for(
        lambda: job_row(first, job.job.id).progress_message == "waiting",
        timeout=TIMEOUT,
        what="the job to run on a worker",
    )
    first.close()  # the server stops: Ray ends its tasks, the job goes back to the queue
    second = open_context(settings)
    try:
        row = job_row(second, job.job.id)
        assert (row.state, row.attempt) == ("queued", 2)
        assert "interrupted by a shutdown" in _lines(second, job.job.id)
        gate.write_text("go")
        ray_kinds.register(second.job_kinds)
        second.start_jobs()
        row = wait_state(second, job.job.id, "succeeded", "failed", timeout=TIMEOUT)
        assert (row.state, row.attempt) == ("succeeded", 2)
    finally:
        second.close()


# -- the learning loop's jobs -------------------------------------------------------------


@pytest.fixture
def world(ctx: Context, tmp_path: Path) -> World:
    _need_train_extra()
    return World(ctx, tmp_path)


def test_export_and_preannotate_on_the_cluster(ctx: Context, world: World) -> None:
    from sqlalchemy import select

    from medlabel.storage.db.models import Export, ImageScore, Proposal

    w = world
    model = run_in_foreground(ctx, w.admin, "train", FAST, project_id=w.project_id)
    assert model.job.state == "succeeded", model.job.error
    model_id = model.job.result["model_id"]
    ctx.start_jobs()  # now on the cluster

    export = submit_job(ctx, w.admin, "export", {"format": "nifti"}, project_id=w.project_id)
    pre = submit_job(ctx, w.ann, "preannotate", {"tta": True}, project_id=w.project_id)
    row = wait_state(ctx, export.job.id, "succeeded", "failed", timeout=TIMEOUT)
    assert row.state == "succeeded", row.error
    assert row.result["exported"] == 3 and row.progress_done == 3
    with ctx.db.read() as s:
        stored = s.get(Export, row.result["export_id"])
        assert stored is not None and stored.size == row.result["size"] > 0

    row = wait_state(ctx, pre.job.id, "succeeded", "failed", timeout=TIMEOUT)
    assert row.state == "succeeded", row.error
    assert row.result["images"] == 2 and not row.result["failed"]
    assert (row.progress_done, row.progress_total) == (2, 2)
    assert row.worker and not row.worker.endswith(f":{os.getpid()}")
    with ctx.db.read() as s:
        scores = list(s.scalars(select(ImageScore).where(ImageScore.model_id == model_id)))
        props = list(s.scalars(select(Proposal).where(Proposal.user_id == w.ann.id)))
    assert sorted(sc.image_id for sc in scores) == w.image_ids[3:]
    assert props and all(p.engine_version == "v1" for p in props)


def test_classification_preannotation_on_the_cluster(ctx: Context, tmp_path: Path) -> None:
    """Classification pre-annotation runs in batches on a Ray actor too: a classifier
    trained on approved classes here, its proposals computed on the cluster."""
    from sqlalchemy import select

    from medlabel.storage.db.models import ImageScore, Proposal
    from tests.jobs.test_preannotate_cls_det import ContentWorld
    from tests.jobs.test_train_content_kind import CLS, tagged

    _need_train_extra()
    w = ContentWorld(ctx, tmp_path)
    _, rest = tagged(w, per_class=3)
    model = run_in_foreground(ctx, w.admin, "train", CLS, project_id=w.project_id)
    assert model.job.state == "succeeded", model.job.error
    ctx.start_jobs()  # now on the cluster

    pre = submit_job(ctx, w.ann, "preannotate", {"task": "cls"}, project_id=w.project_id)
    row = wait_state(ctx, pre.job.id, "succeeded", "failed", timeout=TIMEOUT)
    assert row.state == "succeeded", row.error
    assert row.result["task"] == "cls" and row.result["images"] == len(rest)
    assert row.worker and not row.worker.endswith(f":{os.getpid()}")
    with ctx.db.read() as s:
        scores = list(s.scalars(select(ImageScore)))
        props = list(s.scalars(select(Proposal).where(Proposal.user_id == w.ann.id)))
    assert sorted(sc.image_id for sc in scores) == sorted(rest)
    assert {p.image_id for p in props} == set(rest)
    assert all(p.info["task"] == "cls" and p.info["embedding"] for p in props)
