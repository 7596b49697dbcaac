"""A blinded reader study over the API: settings, queues, blinding, review with pinned
comments, returned work, the reference, progress and assignment management."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medlabel.security.roles import Role
from medlabel.services.context import Context
from medlabel.services.imports import import_paths
from tests.conftest import sample_file

FILES = ("CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm")


def _mask(shape: list[int], value: int = 1) -> dict[str, str]:
    arr = np.zeros(shape[:3], np.uint8)
    arr[0, 4:12, 4:12] = value
    return {"encoding": "raw-gzip", "data": base64.b64encode(gzip.compress(arr.tobytes())).decode()}


@pytest.fixture
def study(admin: TestClient, make_client: Any, ctx: Context) -> dict[str, Any]:
    p = admin.post("/api/projects", json={"name": "Study"}).json()
    labels = [{"name": "lesion", "kind": "mask"}, {"name": "malignant", "kind": "classification"}]
    assert admin.post(f"/api/projects/{p['id']}/labels", json=labels).status_code == 201
    ids = sorted(import_paths(ctx, None, p["id"], [sample_file(f) for f in FILES]).image_ids)
    out: dict[str, Any] = {"pid": p["id"], "ids": ids, "admin": admin}
    for name, role in (("ann", Role.ANNOTATOR), ("bob", Role.ANNOTATOR), ("rita", Role.REVIEWER)):
        client = make_client(name, role)
        uid = client.get("/api/auth/me").json()["id"]
        assert admin.put(f"/api/projects/{p['id']}/members/{uid}", json={}).status_code == 200
        out[name], out[f"{name}_id"] = client, uid
    return out


def _settings(admin: TestClient, pid: int, **body: Any) -> Any:
    return admin.patch(f"/api/projects/{pid}", json=body)


def test_study_settings_are_validated(study: dict[str, Any]) -> None:
    admin, pid = study["admin"], study["pid"]
    before = admin.get(f"/api/projects/{pid}").json()
    assert (before["readers_per_image"], before["blinded"]) == (1, False)
    for bad in (0, 21, "two"):
        r = _settings(admin, pid, readers_per_image=bad)
        assert r.status_code == 422 and "readers_per_image" in r.json()["message"]
    assert study["ann"].patch(f"/api/projects/{pid}", json={"blinded": True}).status_code == 403
    r = _settings(admin, pid, readers_per_image=2, blinded=True)
    assert r.status_code == 200
    assert (r.json()["readers_per_image"], r.json()["blinded"]) == (2, True)
    assert r.json()["description"] == before["description"]  # untouched


def test_reader_study_end_to_end(study: dict[str, Any]) -> None:
    admin, ann, bob, rita = study["admin"], study["ann"], study["bob"], study["rita"]
    pid, ids = study["pid"], study["ids"]
    assert _settings(admin, pid, readers_per_image=2, blinded=True).status_code == 200
    images = {i: admin.get(f"/api/images/{i}").json() for i in ids}

    # both annotators are dealt the first image (two readers each)
    for client in (ann, bob):
        r = client.post(f"/api/projects/{pid}/queue/next")
        assert r.status_code == 200, r.text
        item = r.json()
        assert (item["reason"], item["image"]["id"], item["annotation_id"]) == ("new", ids[0], None)
    shape = images[ids[0]]["shape"]
    readings = {}
    for name, client in (("ann", ann), ("bob", bob)):
        body = {"content": {"classes": ["malignant"]}, "mask": _mask(shape)}
        created = client.post(f"/api/images/{ids[0]}/annotations", json=body).json()
        assert created["kind"] == "reader" and created["submitted_at"] is None
        sub = client.post(
            f"/api/annotations/{created['id']}/submit", json={"base_version": created["version"]}
        ).json()
        assert sub["state"] == "submitted" and sub["submitted_at"] is not None
        readings[name] = sub

    # blinding: ann sees only her own reading, nothing of bob's
    mine = ann.get(f"/api/images/{ids[0]}/annotations").json()
    assert [a["id"] for a in mine] == [readings["ann"]["id"]]
    theirs = readings["bob"]
    for url in (
        f"/api/annotations/{theirs['id']}",
        f"/api/annotations/{theirs['id']}/revisions",
        f"/api/annotations/{theirs['id']}/comments",
        f"/api/revisions/{theirs['head_revision_id']}",
        f"/api/revisions/{theirs['head_revision_id']}/mask",
    ):
        assert ann.get(url).status_code == 404, url
    assert len(rita.get(f"/api/images/{ids[0]}/annotations").json()) == 2
    assert rita.get(f"/api/revisions/{theirs['head_revision_id']}/mask").status_code == 200

    # ann moves on: image 2 is claimed for her
    nxt = ann.post(f"/api/projects/{pid}/queue/next").json()
    assert (nxt["reason"], nxt["image"]["id"]) == ("new", ids[1])

    # the review queue: oldest submission first, reviewers only
    assert ann.get(f"/api/projects/{pid}/review-queue").status_code == 403
    q = rita.get(f"/api/projects/{pid}/review-queue").json()
    assert q["total"] == 2
    assert [(i["annotation_id"], i["reader"], i["image_name"]) for i in q["items"]] == [
        (readings["ann"]["id"], "ann", images[ids[0]]["name"]),
        (readings["bob"]["id"], "bob", images[ids[0]]["name"]),
    ]

    # rejecting needs a comment, by either route; stale versions are conflicts
    a_id, a_v = readings["ann"]["id"], q["items"][0]["version"]
    r = rita.post(f"/api/annotations/{a_id}/reject", json={"base_version": a_v})
    assert r.status_code == 422 and "comment" in r.json()["message"]
    review_url = f"/api/annotations/{a_id}/review"
    r = rita.post(review_url, json={"decision": "reject", "base_version": a_v})
    assert r.status_code == 422
    pin = {"text": "extends further", "location": {"position": [0, 20, 30]}}
    r = rita.post(
        review_url, json={"decision": "reject", "base_version": a_v - 1, "comments": [pin]}
    )
    assert r.status_code == 409
    r = rita.post(review_url, json={"decision": "maybe", "base_version": a_v, "comments": [pin]})
    assert r.status_code == 422
    r = rita.post(review_url, json={"decision": "reject", "base_version": a_v, "comments": [pin]})
    assert r.status_code == 200, r.text
    rejected = r.json()
    assert rejected["annotation"]["state"] == "rejected"
    (comment,) = rejected["comments"]
    assert comment["kind"] == "reject" and comment["author"] == "rita"
    assert comment["revision_id"] == readings["ann"]["head_revision_id"]
    affine = np.asarray(images[ids[0]]["affine"])
    assert comment["location"]["position"] == [0.0, 20.0, 30.0]
    assert np.allclose(comment["location"]["position_mm"], (affine @ [0, 20, 30, 1])[:3], atol=1e-3)

    # returned work comes first in ann's queue, before her assigned image
    queue = ann.get(f"/api/projects/{pid}/queue").json()
    assert [(i["reason"], i["image"]["id"]) for i in queue["items"]] == [
        ("returned", ids[0]),
        ("assigned", ids[1]),
    ]
    nxt = ann.post(f"/api/projects/{pid}/queue/next").json()
    assert (nxt["reason"], nxt["annotation_id"], nxt["annotation_state"]) == (
        "returned",
        a_id,
        "rejected",
    )
    got = ann.get(f"/api/annotations/{a_id}/comments").json()
    assert [c["text"] for c in got] == ["extends further"]

    # ann fixes it, resolves the comment and resubmits
    fix = ann.put(
        f"/api/annotations/{a_id}",
        json={"base_version": nxt["annotation_version"], "mask": _mask(shape, 1)},
    ).json()
    assert fix["state"] == "draft"
    assert ann.post(f"/api/comments/{comment['id']}/resolve").json()["resolved_at"] is not None
    resub = ann.post(f"/api/annotations/{a_id}/submit", json={"base_version": fix["version"]})
    assert resub.status_code == 200
    q = rita.get(f"/api/projects/{pid}/review-queue").json()["items"]
    assert [(i["annotation_id"], i["resubmitted"]) for i in q] == [
        (readings["bob"]["id"], False),
        (a_id, True),
    ]
    for item in q:
        r = rita.post(
            f"/api/annotations/{item['annotation_id']}/review",
            json={"decision": "approve", "base_version": item["version"]},
        )
        assert r.status_code == 200 and r.json()["annotation"]["state"] == "approved"
    assert r.json()["annotation"]["approved_revision_id"] == resub.json()["head_revision_id"]

    # the approved readings are the reference (hidden from blinded readers)
    ref = rita.get(f"/api/images/{ids[0]}/reference").json()
    assert ref["source"] == "readers"
    assert sorted(ref["annotation_ids"]) == sorted([a_id, readings["bob"]["id"]])
    assert ann.get(f"/api/images/{ids[0]}/reference").status_code == 403
    assert rita.get(f"/api/images/{ids[1]}/reference").json()["source"] == "none"

    # progress
    prog = rita.get(f"/api/projects/{pid}/progress").json()
    assert (prog["images"], prog["images_complete"], prog["images_approved"]) == (3, 1, 1)
    assert prog["open_slots"] == 3
    rows = {u["username"]: u for u in prog["users"]}
    assert {k: rows["ann"][k] for k in ("assigned", "approved", "not_started", "remaining")} == {
        "assigned": 2,
        "approved": 1,
        "not_started": 1,
        "remaining": 1,
    }
    assert (rows["bob"]["assigned"], rows["bob"]["remaining"]) == (1, 0)
    assert [u["username"] for u in ann.get(f"/api/projects/{pid}/progress").json()["users"]] == [
        "ann"
    ]

    # distribute fills the three open slots between the two annotators
    dealt = rita.post(f"/api/projects/{pid}/assignments/distribute", json={}).json()
    assert dealt["short_images"] == []
    assert sorted((a["image_id"], a["username"]) for a in dealt["created"]) == [
        (ids[1], "bob"),
        (ids[2], "ann"),
        (ids[2], "bob"),
    ]
    assert rita.get(f"/api/projects/{pid}/progress").json()["open_slots"] == 0


def test_managing_assignments(study: dict[str, Any], make_client: Any) -> None:
    admin, ann, rita = study["admin"], study["ann"], study["rita"]
    pid, ids = study["pid"], study["ids"]
    assert _settings(admin, pid, readers_per_image=1).status_code == 200
    url = f"/api/projects/{pid}/assignments"
    assert ann.post(url, json={"user_id": study["ann_id"], "image_ids": ids}).status_code == 403
    r = rita.post(url, json={"user_id": 9999, "image_ids": ids})
    assert r.status_code == 404 and "user 9999" in r.json()["message"]
    eve = make_client("eve", Role.ANNOTATOR)
    eve_id = eve.get("/api/auth/me").json()["id"]
    r = rita.post(url, json={"user_id": eve_id, "image_ids": ids})
    assert r.status_code == 422 and "not a member" in r.json()["message"]
    assert rita.post(url, json={"user_id": study["ann_id"], "image_ids": []}).status_code == 422
    r = rita.post(url, json={"user_id": study["ann_id"], "image_ids": ids[:2]})
    assert r.status_code == 201 and [a["image_id"] for a in r.json()] == ids[:2]
    first, second = r.json()
    r = rita.post(url, json={"user_id": study["bob_id"], "image_ids": ids})
    assert r.status_code == 409 and r.json()["details"]["full_images"] == ids[:2]
    assert rita.get(url, params={"user_id": study["bob_id"]}).json() == []

    # ann starts the first image: it can be reassigned (with the work) but not unassigned
    created = ann.post(f"/api/images/{ids[0]}/annotations", json={}).json()
    assert rita.delete(f"/api/assignments/{first['id']}").status_code == 409
    r = rita.post(f"/api/assignments/{first['id']}/reassign", json={"user_id": study["bob_id"]})
    assert r.status_code == 200
    assert (r.json()["username"], r.json()["annotation_id"]) == ("bob", created["id"])
    assert study["bob"].get(f"/api/annotations/{created['id']}").json()["owner"] == "bob"
    assert rita.delete(f"/api/assignments/{second['id']}").status_code == 204
    assert [a["image_id"] for a in ann.get(url).json()] == []
    # an annotator cannot annotate an image whose reader slots are taken
    r = ann.post(f"/api/images/{ids[0]}/annotations", json={})
    assert r.status_code == 409 and "reader" in r.json()["message"]
    # the old next-image endpoint walks the same queue without claiming
    nxt = ann.get(f"/api/projects/{pid}/next-image").json()
    assert nxt["id"] == ids[1]
    assert ann.get(url).json() == []
