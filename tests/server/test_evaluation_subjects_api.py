"""What can be evaluated in a project: its members as readers, the engines that made
revisions (``GET /api/projects/{id}/evaluations/subjects``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from medlabel.annotation.content import AnnotationContent
from medlabel.services import annotations as ann_svc
from medlabel.services.consensus import build_consensus
from medlabel.services.context import Context
from medlabel.services.images import get_image
from tests.conftest import PASSWORD
from tests.services.reader_study import make_study, read


def _login(client: TestClient, name: str) -> TestClient:
    r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


def _subjects(client: TestClient, project_id: int) -> dict[str, Any]:
    r = client.get(f"/api/projects/{project_id}/evaluations/subjects")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_a_fresh_project_lists_its_members_and_no_engine(
    ctx: Context, app_client: TestClient
) -> None:
    study = make_study(ctx)
    data = _subjects(_login(app_client, "rita"), study.project_id)
    assert data["engines"] == []
    assert [(r["name"], r["role"], r["readings"], r["approved"]) for r in data["readers"]] == [
        ("ann", "annotator", 0, 0),
        ("bob", "annotator", 0, 0),
        ("cy", "annotator", 0, 0),
        ("rita", "reviewer", 0, 0),
        ("vic", "viewer", 0, 0),
    ]


def test_annotators_may_not_list_subjects(ctx: Context, app_client: TestClient) -> None:
    study = make_study(ctx)
    r = _login(app_client, "ann").get(f"/api/projects/{study.project_id}/evaluations/subjects")
    assert r.status_code == 403
    r = _login(app_client, "rita").get("/api/projects/999/evaluations/subjects")
    assert r.status_code == 404


def test_readings_and_engine_revisions_are_counted(ctx: Context, app_client: TestClient) -> None:
    study = make_study(ctx, readers_per_image=3, blinded=False)
    first, second = study.image_ids[:2]

    def square(image_id: int) -> np.ndarray:
        out = np.zeros(get_image(ctx, study.admin, image_id).shape, np.uint8)
        out[0, 4:12, 4:12] = 1
        return out

    for image in (first, second):
        read(ctx, study.ann, image, mask=square(image))
        bob = read(ctx, study.bob, image, mask=square(image))
    ann_svc.transition(ctx, study.rita, bob.annotation.id, "approve", bob.annotation.version)
    # an engine proposal accepted twice by cy on one image: two revisions, one image
    tool = ann_svc.EngineInfo("litemedsam", "1.0", {"box": [[0, 4, 4], [0, 12, 12]]})
    mask = square(first)
    view = ann_svc.save_annotation(
        ctx, study.cy, first, content=AnnotationContent(), mask=mask, engine=tool
    )
    ann_svc.save_annotation(
        ctx,
        study.cy,
        first,
        content=AnnotationContent(),
        mask=mask,
        engine=tool,
        annotation_id=view.annotation.id,
        base_version=view.annotation.version,
    )
    build_consensus(ctx, study.rita, first, method="staple")

    data = _subjects(_login(app_client, "rita"), study.project_id)
    readers = {r["name"]: (r["readings"], r["approved"]) for r in data["readers"]}
    assert readers == {"ann": (2, 0), "bob": (2, 1), "cy": (1, 0), "rita": (0, 0), "vic": (0, 0)}
    assert data["engines"] == [
        {"engine_name": "consensus.staple", "revisions": 1, "images": 1},
        {"engine_name": "litemedsam", "revisions": 2, "images": 1},
    ]
    # other projects' revisions are not counted
    other = _login(app_client, "admin").post("/api/projects", json={"name": "Other"}).json()
    assert _subjects(app_client, other["id"]) == {"readers": [], "engines": []}
