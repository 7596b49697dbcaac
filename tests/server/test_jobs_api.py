"""The jobs API: start an export job and watch it, validation before anything is
queued, permissions, failures, cancel and retry."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from medlabel.annotation.content import AnnotationContent, Box
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.security.roles import Role
from medlabel.services.annotations import save_annotation
from medlabel.services.context import Context
from medlabel.services.imports import import_paths
from medlabel.services.projects import add_labels, create_project, set_member
from medlabel.services.users import create_user, principal_of
from medlabel.storage.db.models import Job, User
from tests.conftest import PASSWORD, sample_file


@pytest.fixture
def world(ctx: Context) -> dict[str, Any]:
    """A project with one annotated DICOM image (a box), and an empty project."""
    owner = principal_of(create_user(ctx, "owner", PASSWORD, Role.ADMIN))
    project = create_project(ctx, owner, "Jobs")
    add_labels(ctx, owner, project.id, [LabelSpec(name="finding", kind=LabelKind.BOX)])
    (image_id,) = import_paths(ctx, owner, project.id, [sample_file("CT_small.dcm")]).image_ids
    box = Box(label="finding", start=(-0.5, 10, 10), end=(0.5, 30, 40))
    save_annotation(ctx, owner, image_id, content=AnnotationContent(boxes=[box]))
    empty = create_project(ctx, owner, "Empty")
    return {"owner": owner, "project": project.id, "empty": empty.id}


def _wait(client: TestClient, job_id: int, *states: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job['state']}"
        time.sleep(0.05)


def _jobs_stored(ctx: Context) -> int:
    with ctx.db.read() as s:
        return s.scalar(select(func.count()).select_from(Job)) or 0


def test_an_export_job_runs_and_its_export_downloads(
    admin: TestClient, world: dict[str, Any]
) -> None:
    pid = world["project"]
    r = admin.post(
        f"/api/projects/{pid}/jobs", json={"kind": "export", "params": {"format": "csv"}}
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["kind"] == "export" and job["state"] in ("queued", "running", "succeeded")
    assert job["params"]["which"] == "latest" and job["created_by_name"] == "admin"
    done = _wait(admin, job["id"], "succeeded", "failed")
    assert done["state"] == "succeeded", done["error"]
    result = done["result"]
    assert result["exported"] == 1 and result["format"] == "csv" and result["size"] > 0
    assert done["progress"]["total"] and done["progress"]["done"] == done["progress"]["total"]
    z = admin.get(f"/api/exports/{result['export_id']}/download")
    names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
    assert "annotations.csv" in names and "manifest.json" in names

    logs = admin.get(f"/api/jobs/{job['id']}/logs").json()
    lines = [x["line"] for x in logs["lines"]]
    assert logs["state"] == "succeeded" and lines[-1] == "succeeded"
    assert "exporting latest revisions as csv" in lines
    assert [x["seq"] for x in logs["lines"]] == list(range(1, len(lines) + 1))
    newer = admin.get(f"/api/jobs/{job['id']}/logs", params={"after": logs["next"]}).json()
    assert newer["lines"] == [] and newer["next"] == logs["next"]

    listed = admin.get("/api/jobs", params={"project_id": pid, "state": "succeeded"}).json()
    assert [j["id"] for j in listed] == [job["id"]]
    assert admin.get("/api/jobs", params={"state": "running"}).json() == []
    assert admin.get("/api/jobs", params={"state": "paused"}).status_code == 422
    kinds = {k["name"]: k for k in admin.get("/api/jobs/kinds").json()}
    assert "format" in kinds["export"]["params_schema"]["properties"]
    # the export the job made is listed with the others
    exports = admin.get(f"/api/projects/{pid}/exports").json()
    assert [e["id"] for e in exports] == [result["export_id"]]


BAD_REQUESTS = [
    ({"kind": "nope", "params": {}}, "no job kind named 'nope' (known: evaluate, export"),
    ({"kind": "export", "params": {}}, "format: Field required"),
    ({"kind": "export", "params": {"format": "gif"}}, "format: Input should be"),
    ({"kind": "export", "params": {"format": "csv", "dataset_id": 0}}, "dataset_id"),
    ({"kind": "export", "params": {"format": "csv", "which": "approved"}}, "no approved"),
    ({"params": {}}, "kind: Field required"),
]


def test_bad_requests_are_refused_before_anything_is_queued(
    admin: TestClient, ctx: Context, world: dict[str, Any]
) -> None:
    for body, message in BAD_REQUESTS:
        r = admin.post(f"/api/projects/{world['project']}/jobs", json=body)
        assert r.status_code == 422, r.text
        assert message in r.json()["message"], (body, r.json())
    assert _jobs_stored(ctx) == 0


def test_an_empty_project_has_nothing_to_export(
    admin: TestClient, ctx: Context, world: dict[str, Any]
) -> None:
    r = admin.post(
        f"/api/projects/{world['empty']}/jobs", json={"kind": "export", "params": {"format": "csv"}}
    )
    assert r.status_code == 422 and "has no annotations to export" in r.json()["message"]
    assert admin.post("/api/projects/999/jobs", json={"kind": "export"}).status_code == 404
    assert _jobs_stored(ctx) == 0


def test_permissions(
    admin: TestClient,
    make_client: Callable[..., TestClient],
    ctx: Context,
    world: dict[str, Any],
) -> None:
    pid, owner = world["project"], world["owner"]
    reviewer = make_client("rita", Role.REVIEWER)
    annotator = make_client("anna", Role.ANNOTATOR)
    outsider = make_client("otto", Role.REVIEWER)
    for name, role in (("rita", "reviewer"), ("anna", "annotator")):
        with ctx.db.read() as s:
            uid = s.scalar(select(User.id).where(User.username == name))
        assert uid is not None
        set_member(ctx, owner, pid, uid, role)
    body = {"kind": "export", "params": {"format": "csv"}}
    assert annotator.post(f"/api/projects/{pid}/jobs", json=body).status_code == 403
    assert outsider.post(f"/api/projects/{pid}/jobs", json=body).status_code == 404
    r = reviewer.post(f"/api/projects/{pid}/jobs", json=body)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    _wait(reviewer, job_id, "succeeded", "failed")

    assert annotator.get(f"/api/jobs/{job_id}").status_code == 403
    assert annotator.get(f"/api/jobs/{job_id}/logs").status_code == 403
    assert annotator.post(f"/api/jobs/{job_id}/retry").status_code == 403
    assert outsider.get(f"/api/jobs/{job_id}").status_code == 404
    assert outsider.post(f"/api/jobs/{job_id}/cancel").status_code == 404
    assert annotator.get("/api/jobs", params={"project_id": pid}).json() == []
    assert annotator.get("/api/jobs").json() == []
    assert outsider.get("/api/jobs").json() == []
    assert outsider.get("/api/jobs", params={"project_id": pid}).status_code == 404
    assert [j["id"] for j in reviewer.get("/api/jobs").json()] == [job_id]
    assert admin.get(f"/api/jobs/{job_id}").json()["created_by_name"] == "rita"
    assert admin.get("/api/jobs/12345").status_code == 404


def test_a_failing_export_reports_why_and_can_be_retried(
    admin: TestClient, world: dict[str, Any]
) -> None:
    # boxes only: nothing a DICOM SEG can hold, found while the job runs
    body = {"kind": "export", "params": {"format": "dicom-seg"}}
    job = admin.post(f"/api/projects/{world['project']}/jobs", json=body).json()
    done = _wait(admin, job["id"], "failed", "succeeded")
    assert done["state"] == "failed"
    assert done["error"].startswith("nothing in this project can be exported as dicom-seg")
    lines = admin.get(f"/api/jobs/{job['id']}/logs").json()["lines"]
    assert not any("Traceback" in x["line"] for x in lines)  # a user error, not a crash
    assert admin.post(f"/api/jobs/{job['id']}/cancel").status_code == 409
    again = admin.post(f"/api/jobs/{job['id']}/retry")
    assert again.status_code == 200 and again.json()["attempt"] == 2
    assert _wait(admin, job["id"], "failed", "succeeded")["attempt"] == 2
