"""Evaluation reports inside a project: a reader against the reference, as a job."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
from fastapi.testclient import TestClient

from medlabel.services import annotations as ann_svc
from medlabel.services.context import Context
from medlabel.services.images import get_image
from tests.conftest import PASSWORD
from tests.services.reader_study import make_study, read
from tests.support.jobs import wait_job


def _login(client: TestClient, name: str) -> TestClient:
    r = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


def test_a_reader_is_evaluated_against_the_others(ctx: Context, app_client: TestClient) -> None:
    study = make_study(ctx, readers_per_image=2, blinded=False)
    expected = []
    for k, image in enumerate(study.image_ids[:2]):
        shape = list(get_image(ctx, study.admin, image).shape)
        a = np.zeros(shape, np.uint8)
        a[0, 10:30, 10:30] = 1
        b = np.zeros(shape, np.uint8)
        b[0, 10 + 2 * k : 30, 10:32] = 1
        read(ctx, study.ann, image, mask=a)
        bob = read(ctx, study.bob, image, mask=b)
        ann_svc.transition(ctx, study.rita, bob.annotation.id, "approve", bob.annotation.version)
        expected.append(2 * int((a & b).sum()) / int(a.sum() + b.sum()))

    client = _login(app_client, "rita")
    pid = study.project_id
    bad = client.post(f"/api/projects/{pid}/jobs", json={"kind": "evaluate", "params": {}})
    assert bad.status_code == 422 and "subject" in bad.text
    bad = client.post(
        f"/api/projects/{pid}/jobs",
        json={"kind": "evaluate", "params": {"subject": "reader"}},
    )
    assert bad.status_code == 422 and "user_id" in bad.text
    r = client.post(
        f"/api/projects/{pid}/jobs",
        json={"kind": "evaluate", "params": {"subject": "reader", "user_id": study.ann.id}},
    )
    assert r.status_code == 201, r.text
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "succeeded", job
    eid = job["result"]["evaluation_id"]
    assert job["result"]["cases"] == 2

    (listed,) = client.get(f"/api/projects/{pid}/evaluations").json()
    assert listed["id"] == eid and listed["subject"]["name"] == "ann"
    dice = listed["summary"]["1"]["dice"]
    assert abs(dice["mean"] - np.mean(expected)) < 1e-9
    assert dice["ci_low"] <= dice["mean"] <= dice["ci_high"]

    report = client.get(f"/api/evaluations/{eid}/report.json").json()
    assert {c["case"] for c in report["cases"]} == {
        get_image(ctx, study.admin, i).name for i in study.image_ids[:2]
    }
    page = client.get(f"/api/evaluations/{eid}/report.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    HTMLParser().feed(page.text)
    assert "<svg" in page.text and "ann" in page.text

    # bob's readings are the reference themselves; with no other reference: nothing to do
    r = client.post(
        f"/api/projects/{pid}/jobs",
        json={"kind": "evaluate", "params": {"subject": "reader", "user_id": study.bob.id}},
    )
    assert r.status_code == 422 and "nothing to evaluate" in r.text

    # annotators cannot see evaluations
    annie = _login(app_client, "ann")
    assert annie.get(f"/api/projects/{pid}/evaluations").status_code == 403
