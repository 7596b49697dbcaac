"""Annotations over the API: revisions, history, restore, conflicts, masks, review state."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medlabel.imaging.volume import Volume
from medlabel.io.nifti import write_nifti
from medlabel.security.roles import Role
from medlabel.services.context import Context
from medlabel.services.imports import import_paths
from tests.conftest import sample_file

LABELS = [
    {"name": "liver", "kind": "mask"},
    {"name": "tumour", "kind": "mask"},
    {"name": "nodule", "kind": "box"},
    {"name": "apex", "kind": "point"},
    {"name": "cirrhosis", "kind": "classification"},
    {"name": "remark", "kind": "note"},
]


@pytest.fixture
def setup(admin: TestClient, ctx: Context) -> dict[str, Any]:
    p = admin.post("/api/projects", json={"name": "P"}).json()
    labels = admin.post(f"/api/projects/{p['id']}/labels", json=LABELS).json()
    summary = import_paths(ctx, None, p["id"], [sample_file("CT_small.dcm")])
    image = admin.get(f"/api/images/{summary.image_ids[0]}").json()
    return {"project": p, "labels": {lab["name"]: lab for lab in labels}, "image": image}


def raw_mask(mask: np.ndarray) -> dict[str, str]:
    return {
        "encoding": "raw-gzip",
        "dtype": str(mask.dtype),
        "data": base64.b64encode(gzip.compress(mask.tobytes())).decode(),
    }


def _content() -> dict[str, Any]:
    return {
        "boxes": [{"label": "nodule", "start": [-0.5, 10.5, 20.5], "end": [0.5, 30.5, 50.5]}],
        "points": [{"label": "apex", "position": [0, 64, 64]}],
        "classes": ["cirrhosis"],
        "notes": [{"text": "rim enhancement", "position": [0, 20, 30]}, {"text": "whole image"}],
    }


def test_save_history_and_restore(admin: TestClient, setup: dict[str, Any]) -> None:
    image = setup["image"]
    mask = np.zeros(image["shape"], np.uint8)
    mask[0, 40:80, 30:90] = 1
    mask[0, 50:60, 50:60] = 2
    r = admin.post(
        f"/api/images/{image['id']}/annotations",
        json={"content": _content(), "mask": raw_mask(mask), "message": "first"},
    )
    assert r.status_code == 201, r.text
    ann = r.json()
    head = ann["head"]
    assert ann["state"] == "draft" and head["number"] == 1 and head["source"] == "human"
    assert head["mask_summary"]["voxels"] == {"1": 2300, "2": 100}
    box = head["content"]["boxes"][0]
    # voxel and patient coordinates are both stored
    affine = np.asarray(image["affine"])
    assert np.allclose(box["start_mm"], (affine @ [-0.5, 10.5, 20.5, 1])[:3], atol=1e-3)
    assert head["content"]["points"][0]["position_mm"] is not None
    assert admin.get(f"/api/projects/{setup['project']['id']}").json()["counts"] == {
        "in_progress": 1
    }

    # second revision: content changes, mask kept (omitted)
    r = admin.put(
        f"/api/annotations/{ann['id']}",
        json={"base_version": ann["version"], "content": {"classes": []}},
    )
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["head"]["number"] == 2 and second["head"]["has_mask"]
    assert second["head"]["parent_id"] == head["id"]

    # third: mask removed with an explicit null
    r = admin.put(
        f"/api/annotations/{ann['id']}", json={"base_version": second["version"], "mask": None}
    )
    third = r.json()
    assert not third["head"]["has_mask"]

    history = admin.get(f"/api/annotations/{ann['id']}/revisions").json()
    assert [h["number"] for h in history] == [3, 2, 1]

    # restore revision 1 as revision 4; the old ones stay
    r = admin.post(
        f"/api/annotations/{ann['id']}/restore",
        json={"revision_id": head["id"], "base_version": third["version"]},
    )
    restored = r.json()["head"]
    assert restored["number"] == 4 and restored["restored_from_id"] == head["id"]
    assert restored["content"] == head["content"] and restored["has_mask"]
    got = admin.get(f"/api/revisions/{restored['id']}/mask")
    shape = tuple(int(x) for x in got.headers["X-Mask-Shape"].split(","))
    back = np.frombuffer(gzip.decompress(got.content), dtype=got.headers["X-Mask-Dtype"])
    assert np.array_equal(back.reshape(shape), mask)


def test_concurrent_edit_is_a_409_not_a_lost_update(
    admin: TestClient, make_client: Any, setup: dict[str, Any]
) -> None:
    image = setup["image"]
    ann = admin.post(f"/api/images/{image['id']}/annotations", json={"content": {}}).json()
    rita = make_client("rita", Role.REVIEWER)
    admin.put(
        f"/api/projects/{setup['project']['id']}/members/{rita.get('/api/auth/me').json()['id']}",
        json={},
    )
    # both loaded version 1; rita saves first
    ok = rita.put(
        f"/api/annotations/{ann['id']}",
        json={"base_version": ann["version"], "content": {"classes": ["cirrhosis"]}},
    )
    assert ok.status_code == 200
    late = admin.put(
        f"/api/annotations/{ann['id']}",
        json={"base_version": ann["version"], "content": {"classes": []}},
    )
    assert late.status_code == 409
    body = late.json()
    assert "rita" in body["message"] and body["details"]["current_version"] == ok.json()["version"]
    head = admin.get(f"/api/annotations/{ann['id']}").json()["head"]
    assert head["content"]["classes"] == ["cirrhosis"]  # rita's save survived


def test_one_annotation_per_reader(admin: TestClient, setup: dict[str, Any]) -> None:
    url = f"/api/images/{setup['image']['id']}/annotations"
    first = admin.post(url, json={})
    second = admin.post(url, json={})
    assert second.status_code == 409
    assert second.json()["details"]["annotation_id"] == first.json()["id"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"content": {"classes": ["unknown-thing"]}}, "unknown label 'unknown-thing'"),
        ({"content": {"classes": ["liver"]}}, "mask label and cannot be used as a classification"),
        (
            {"content": {"boxes": [{"label": "nodule", "start": [0, 0, 0], "end": [0, 5, 5]}]}},
            "start",
        ),
        (
            {"content": {"points": [{"label": "apex", "position": [0, 500, 5]}]}},
            "outside the image",
        ),
        ({"content": {"notes": [{"text": ""}]}}, "notes"),
        ({"content": {"boxes": [{"label": "nodule"}]}}, "corners"),
        ({"mask": {"encoding": "raw-gzip", "data": "!!!"}}, "base64"),
        ({"mask": {"encoding": "raw-gzip", "data": base64.b64encode(b"xx").decode()}}, "gzip"),
        ({"mask": {"encoding": "jpeg", "data": ""}}, "encoding"),
    ],
)
def test_bad_annotations_are_422_and_not_stored(
    admin: TestClient, setup: dict[str, Any], body: dict[str, Any], fragment: str
) -> None:
    url = f"/api/images/{setup['image']['id']}/annotations"
    r = admin.post(url, json=body)
    assert r.status_code == 422, r.text
    assert fragment in r.json()["message"], r.json()["message"]
    assert admin.get(url).json() == []


def test_mask_of_wrong_shape_or_value_is_refused(admin: TestClient, setup: dict[str, Any]) -> None:
    url = f"/api/images/{setup['image']['id']}/annotations"
    wrong_shape = np.zeros((1, 64, 64), np.uint8)
    r = admin.post(url, json={"mask": raw_mask(wrong_shape)})
    assert r.status_code == 422 and "(1, 128, 128)" in r.json()["message"]
    unknown_value = np.zeros((1, 128, 128), np.uint8)
    unknown_value[0, 0, 0] = 7
    r = admin.post(url, json={"mask": raw_mask(unknown_value)})
    assert r.status_code == 422 and "[7]" in r.json()["message"]
    bomb = {"encoding": "raw-gzip", "data": base64.b64encode(gzip.compress(b"\0" * 10**7)).decode()}
    r = admin.post(url, json={"mask": bomb})
    assert r.status_code == 413
    assert admin.get(url).json() == []


def test_mask_as_nifti_in_another_orientation(admin: TestClient, setup: dict[str, Any]) -> None:
    image = setup["image"]
    mask = np.zeros(image["shape"], np.uint8)
    mask[0, 5:15, 100:120] = 1
    vol = Volume(mask, np.asarray(image["affine"]))
    # the same voxels with columns flipped and the affine adjusted: still the same grid
    flipped = np.eye(4)
    flipped[2, 2] = -1
    flipped[2, 3] = image["shape"][2] - 1
    other = Volume(mask[:, :, ::-1].copy(), vol.affine @ flipped)
    data = write_nifti(other)
    assert data is not None
    body = {"mask": {"encoding": "nifti", "data": base64.b64encode(data).decode()}}
    r = admin.post(f"/api/images/{image['id']}/annotations", json=body)
    assert r.status_code == 201, r.text
    got = admin.get(f"/api/revisions/{r.json()['head']['id']}/mask")
    back = np.frombuffer(gzip.decompress(got.content), np.uint8).reshape(mask.shape)
    assert np.array_equal(back, mask)


def test_review_states(admin: TestClient, make_client: Any, setup: dict[str, Any]) -> None:
    pid = setup["project"]["id"]
    alice = make_client("alice", Role.ANNOTATOR)
    admin.put(f"/api/projects/{pid}/members/{alice.get('/api/auth/me').json()['id']}", json={})
    url = f"/api/images/{setup['image']['id']}/annotations"
    ann = alice.post(url, json={"content": {"classes": ["cirrhosis"]}}).json()
    # annotators cannot approve, not even their own work
    sub = alice.post(f"/api/annotations/{ann['id']}/submit", json={"base_version": ann["version"]})
    assert sub.status_code == 200 and sub.json()["state"] == "submitted"
    assert admin.get(f"/api/projects/{pid}").json()["counts"] == {"submitted": 1}
    v = sub.json()["version"]
    assert (
        alice.post(f"/api/annotations/{ann['id']}/approve", json={"base_version": v}).status_code
        == 403
    )
    ok = admin.post(f"/api/annotations/{ann['id']}/approve", json={"base_version": v})
    assert ok.json()["state"] == "approved"
    assert ok.json()["approved_revision_id"] == ann["head"]["id"]
    assert admin.get(f"/api/projects/{pid}").json()["counts"] == {"approved": 1}
    again = admin.post(
        f"/api/annotations/{ann['id']}/approve", json={"base_version": ok.json()["version"]}
    )
    assert again.status_code == 409


def test_permissions_on_annotations(
    admin: TestClient, make_client: Any, setup: dict[str, Any]
) -> None:
    pid = setup["project"]["id"]
    url = f"/api/images/{setup['image']['id']}/annotations"
    mine = admin.post(url, json={}).json()
    alice = make_client("alice", Role.ANNOTATOR)
    vic = make_client("vic", Role.VIEWER)
    for client in (alice, vic):
        admin.put(f"/api/projects/{pid}/members/{client.get('/api/auth/me').json()['id']}", json={})
    # viewers read but do not write
    assert len(vic.get(url).json()) == 1
    assert vic.post(url, json={}).status_code == 403
    # annotators cannot edit someone else's annotation
    r = alice.put(f"/api/annotations/{mine['id']}", json={"base_version": mine["version"]})
    assert r.status_code == 403
    # outsiders see nothing
    bob = make_client("bob", Role.ANNOTATOR)
    assert bob.get(url).status_code == 404
    assert bob.get(f"/api/annotations/{mine['id']}").status_code == 404
