"""The PACS API against a real Orthanc: connections (secrets never returned), search,
pull as a job, push, and clear 4xx answers for bad URLs, credentials and studies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.io.dicomweb import DicomwebClient
from medlabel.security.roles import Role
from medlabel.services.annotations import save_annotation
from medlabel.services.context import Context
from medlabel.services.projects import add_labels
from medlabel.services.users import principal_of
from medlabel.storage.db.models import Image, User
from tests.support.jobs import wait_job
from tests.support.orthanc import AUTH_USER, Orthanc
from tests.support.pacs_data import StudyFiles, ct_study, load
from tests.support.require import free_port

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def loaded(orthanc: Orthanc) -> dict[str, StudyFiles]:
    return load(orthanc)


@pytest.fixture
def pid(admin: TestClient) -> int:
    r = admin.post("/api/projects", json={"name": "PACS API"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _connect(client: TestClient, pid: int, **body: Any) -> dict[str, Any]:
    r = client.post(f"/api/projects/{pid}/pacs", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def test_connections_never_return_secrets(admin: TestClient, pid: int) -> None:
    made = _connect(
        admin, pid, name="main", url="http://pacs.example/dicom-web", auth_kind="bearer",
        secret="tok-123",
    )  # fmt: skip
    assert made["has_secret"] and made["auth_kind"] == "bearer"
    for r in (
        admin.get(f"/api/projects/{pid}/pacs"),
        admin.get(f"/api/pacs/{made['id']}"),
    ):
        assert r.status_code == 200 and "tok-123" not in r.text and '"secret"' not in r.text
    assert admin.delete(f"/api/pacs/{made['id']}").status_code == 204
    assert admin.get(f"/api/pacs/{made['id']}").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "url": "not a url"},
        {"name": "x", "url": "http://p/dw", "auth_kind": "basic"},
        {"name": "x", "url": "http://p/dw", "auth_kind": "kerberos"},
        {"url": "http://p/dw"},
    ],
)
def test_bad_connections_are_422(admin: TestClient, pid: int, body: dict[str, Any]) -> None:
    r = admin.post(f"/api/projects/{pid}/pacs", json=body)
    assert r.status_code == 422, r.text


def test_annotators_may_not_add_connections(
    admin: TestClient, make_client: Any, pid: int, ctx: Context
) -> None:
    ann = make_client("ann", Role.ANNOTATOR)
    with ctx.db.read() as s:
        uid = s.scalar(select(User.id).where(User.username == "ann"))
    r = admin.put(f"/api/projects/{pid}/members/{uid}", json={"role": "annotator"})
    assert r.status_code in (200, 201), r.text
    r = ann.post(f"/api/projects/{pid}/pacs", json={"name": "x", "url": "http://p/dw"})
    assert r.status_code == 403


def test_search_pull_push(
    admin: TestClient,
    pid: int,
    ctx: Context,
    orthanc: Orthanc,
    loaded: dict[str, StudyFiles],
) -> None:
    ct = ct_study(loaded)
    conn = _connect(admin, pid, name="orthanc", url=orthanc.dicomweb_url)
    assert admin.post(f"/api/pacs/{conn['id']}/test").status_code == 204
    r = admin.get(
        f"/api/pacs/{conn['id']}/search",
        params={"patient_id": ct.patient_id, "modality": "CT", "date_from": "2001-01-01",
                "date_to": "2001-01-01"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert [s["study_uid"] for s in r.json()] == [ct.study_uid]
    r = admin.get(f"/api/pacs/{conn['id']}/search", params={"description": "spine"})
    assert {s["description"] for s in r.json()} >= {"XR C Spine Comp Min 4 Views"}
    assert admin.get(f"/api/pacs/{conn['id']}/search", params={"limit": 0}).status_code == 422
    r = admin.get(
        f"/api/pacs/{conn['id']}/search",
        params={"date_from": "2002-01-01", "date_to": "2001-01-01"},
    )
    assert r.status_code == 422 and "after" in r.json()["message"]
    # pull: a job
    r = admin.post(f"/api/pacs/{conn['id']}/pull", json={"study_uids": [ct.study_uid]})
    assert r.status_code == 202, r.text
    job = wait_job(admin, r.json()["id"])
    assert job["state"] == "succeeded", job["error"]
    assert job["kind"] == "pacs_pull" and job["result"]["counts"]["instances"] == 7
    images = admin.get(f"/api/projects/{pid}/images").json()
    items = images["items"] if isinstance(images, dict) else images
    assert len(items) == 3 and all(ct.patient_name not in str(i) for i in items)
    # push the annotation of the 5-slice image as SEG
    with ctx.db.read() as s:
        image = next(
            i for i in s.scalars(select(Image).where(Image.project_id == pid)) if i.shape[0] == 5
        )
        admin_user = s.scalar(select(User).where(User.username == "admin"))
        assert admin_user is not None
        actor = principal_of(admin_user)
    add_labels(ctx, actor, pid, [LabelSpec(name="organ", kind=LabelKind.MASK)])
    mask = np.zeros(image.shape, np.uint8)
    mask[2, 3:9, 4:10] = 1
    view = save_annotation(ctx, actor, image.id, content=AnnotationContent(), mask=mask)
    ann_id = view.annotation.id
    r = admin.post(
        f"/api/annotations/{ann_id}/push", json={"connection_id": conn["id"], "kind": "seg"}
    )
    assert r.status_code == 200, r.text
    pushed = r.json()
    found = DicomwebClient(orthanc.dicomweb_url).search_instances(pushed["study_uid"])
    assert pushed["sop_instance_uid"] in {ds["00080018"]["Value"][0] for ds in found}
    r = admin.post(
        f"/api/annotations/{ann_id}/push", json={"connection_id": conn["id"], "kind": "sr"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    r = admin.post(
        f"/api/annotations/{ann_id}/push", json={"connection_id": conn["id"], "kind": "pdf"}
    )
    assert r.status_code == 422
    r = admin.post(
        f"/api/annotations/{ann_id}/push",
        json={"connection_id": conn["id"], "kind": "seg", "which": "approved"},
    )
    assert r.status_code == 404 and "approved" in r.json()["message"]


def test_failures_are_clear_4xx(
    admin: TestClient, pid: int, orthanc: Orthanc, orthanc_auth: Orthanc
) -> None:
    dead = _connect(admin, pid, name="dead", url=f"http://127.0.0.1:{free_port()}/dicom-web")
    r = admin.get(f"/api/pacs/{dead['id']}/search")
    assert r.status_code == 424 and "cannot reach" in r.json()["message"]
    wrong = _connect(
        admin, pid, name="wrong", url=orthanc_auth.dicomweb_url, auth_kind="basic",
        username=AUTH_USER, secret="bad",
    )  # fmt: skip
    r = admin.get(f"/api/pacs/{wrong['id']}/search")
    assert r.status_code == 424 and "credentials" in r.json()["message"]
    r = admin.post(f"/api/pacs/{wrong['id']}/pull", json={"study_uids": ["1.2.3"]})
    assert r.status_code == 424
    ok = _connect(admin, pid, name="ok", url=orthanc.dicomweb_url)
    r = admin.post(f"/api/pacs/{ok['id']}/pull", json={"study_uids": ["1.2.826.0.1.3680043.9.7"]})
    assert r.status_code == 404 and "has no study" in r.json()["message"]
    r = admin.post(f"/api/pacs/{ok['id']}/pull", json={"study_uids": ["DROP TABLE"]})
    assert r.status_code == 422
    assert admin.post(f"/api/pacs/{ok['id']}/pull", json={"study_uids": []}).status_code == 422
    assert admin.get("/api/pacs/99999/search").status_code == 404
    r = admin.post("/api/annotations/99999/push", json={"connection_id": ok["id"]})
    assert r.status_code == 404
