"""AI proposals over the API: engines, propose, accept, reject, errors and start-up preload."""

from __future__ import annotations

import base64
import gzip
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medlabel.core.settings import Settings
from medlabel.security.roles import Role
from medlabel.server.app import create_app
from medlabel.services.context import Context
from medlabel.services.imports import import_paths
from tests.conftest import sample_file

LABELS = [
    {"name": "liver", "kind": "mask", "value": 1},
    {"name": "tumour", "kind": "mask", "value": 2},
    {"name": "nodule", "kind": "box"},
]
BOX = [[0, 40, 30], [0, 90, 100]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """No engine preloading in these tests (one test turns it on by itself)."""
    return Settings(home=tmp_path / "home", login_max_failures=5, preload_engines=[])


@pytest.fixture
def setup(admin: TestClient, make_client: Any, ctx: Context) -> dict[str, Any]:
    p = admin.post("/api/projects", json={"name": "P"}).json()
    admin.post(f"/api/projects/{p['id']}/labels", json=LABELS)
    (image_id,) = import_paths(ctx, None, p["id"], [sample_file("CT_small.dcm")]).image_ids
    clients = {}
    for name, role, project_role in (
        ("ann", Role.ANNOTATOR, "annotator"),
        ("bob", Role.ANNOTATOR, "annotator"),
        ("vic", Role.VIEWER, "viewer"),
    ):
        client = make_client(name, role)
        uid = client.get("/api/auth/me").json()["id"]
        r = admin.put(f"/api/projects/{p['id']}/members/{uid}", json={"role": project_role})
        assert r.status_code == 200, r.text
        clients[name] = client
    return {"project": p, "image_id": image_id, **clients}


def _body(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "engine": "threshold",
        "label": "liver",
        "axis": 0,
        "index": 0,
        "box": BOX,
        "params": {"method": "otsu-above"},
    }
    body.update(kw)
    return body


def _mask(out: dict[str, Any]) -> np.ndarray:
    m = out["mask"]
    assert (m["encoding"], m["dtype"]) == ("raw-gzip", "uint8")
    raw = gzip.decompress(base64.b64decode(m["data"]))
    return np.frombuffer(raw, np.uint8).reshape(out["shape"]).astype(bool)


def _raw(mask: np.ndarray) -> dict[str, str]:
    return {
        "encoding": "raw-gzip",
        "data": base64.b64encode(gzip.compress(mask.tobytes())).decode(),
    }


def test_engines_are_listed_for_members_and_need_a_login(
    setup: dict[str, Any], app_client: TestClient
) -> None:
    r = setup["vic"].get("/api/engines")
    assert r.status_code == 200, r.text
    engines = {e["name"]: e for e in r.json()}
    threshold = engines["threshold"]
    assert threshold["available"] and threshold["volumetric"] and "box" in threshold["prompts"]
    method = next(p for p in threshold["params"] if p["name"] == "method")
    assert method["kind"] == "choice" and method["default"] == "range"
    assert app_client.get("/api/engines").status_code == 401
    r = app_client.post(f"/api/images/{setup['image_id']}/proposals", json=_body())
    assert r.status_code == 401


def test_propose_then_accept_puts_the_mask_where_it_was_proposed(
    setup: dict[str, Any],
) -> None:
    ann, image_id = setup["ann"], setup["image_id"]
    r = ann.post(f"/api/images/{image_id}/proposals", json=_body())
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["engine"], out["version"], out["label"], out["state"]) == (
        "threshold",
        "1",
        "liver",
        "pending",
    )
    assert out["prompt"]["box"] == [[0.0, 40.0, 30.0], [0.0, 90.0, 100.0]]
    assert "otsu" in out["info"] and out["seconds"] >= 0
    mask = _mask(out)
    assert int(mask.sum()) == out["voxels"] > 0
    got = ann.get(f"/api/proposals/{out['id']}")
    assert got.status_code == 200 and np.array_equal(_mask(got.json()), mask)
    listed = ann.get(f"/api/images/{image_id}/proposals?state=pending").json()
    assert [p["id"] for p in listed] == [out["id"]] and listed[0]["mask"] is None

    r = ann.post(
        f"/api/images/{image_id}/proposals/accept", json={"ids": [out["id"]], "base_version": None}
    )
    assert r.status_code == 200, r.text
    acc = r.json()
    assert acc["accepted"] == [out["id"]]
    head = acc["annotation"]["head"]
    assert head["source"] == "engine" and head["engine_name"] == "threshold"
    assert head["engine_version"] == "1" and head["prompt"]["proposals"] == [out["id"]]
    assert head["mask_summary"]["voxels"] == {"1": out["voxels"]}
    saved = ann.get(f"/api/revisions/{head['id']}/mask")
    shape = tuple(int(x) for x in saved.headers["X-Mask-Shape"].split(","))
    full = np.frombuffer(gzip.decompress(saved.content), saved.headers["X-Mask-Dtype"])
    full = full.reshape(shape)
    (p, r0, c), (dp, dr, dc) = out["origin"], out["shape"]
    assert np.array_equal(full[p : p + dp, r0 : r0 + dr, c : c + dc] == 1, mask)
    assert int((full == 1).sum()) == out["voxels"]
    decided = ann.get(f"/api/proposals/{out['id']}").json()
    assert decided["state"] == "accepted" and decided["revision_id"] == head["id"]


def test_reject_stale_versions_and_decided_proposals(setup: dict[str, Any]) -> None:
    ann, image_id = setup["ann"], setup["image_id"]
    url = f"/api/images/{image_id}/proposals"
    ids = [ann.post(url, json=_body()).json()["id"] for _ in range(3)]
    r = ann.post(f"{url}/reject", json={"ids": [ids[0]]})
    assert r.status_code == 200 and r.json() == {"rejected": [ids[0]]}
    r = ann.post(f"{url}/accept", json={"ids": [ids[0]]})
    assert r.status_code == 409 and "already rejected" in r.json()["message"]
    first = ann.post(f"{url}/accept", json={"ids": [ids[1]], "mode": "replace"}).json()
    version = first["annotation"]["version"]
    stale = ann.post(f"{url}/accept", json={"ids": [ids[2]], "base_version": version - 1})
    assert stale.status_code == 409 and stale.json()["details"]["current_version"] == version
    assert ann.get(f"/api/proposals/{ids[2]}").json()["state"] == "pending"
    ok = ann.post(f"{url}/accept", json={"ids": [ids[2]], "base_version": version})
    assert ok.status_code == 200 and ok.json()["annotation"]["head"]["number"] == 2


def test_bad_requests_are_4xx_and_store_nothing(setup: dict[str, Any]) -> None:
    ann, image_id = setup["ann"], setup["image_id"]
    url = f"/api/images/{image_id}/proposals"
    plane = np.zeros((64, 64), np.uint8)
    cases: list[tuple[dict[str, Any], int, str]] = [
        (_body(engine="nope"), 404, "no engine named 'nope'"),
        (_body(label="spleen"), 422, "unknown label 'spleen'"),
        (_body(label="nodule"), 422, "is a box label"),
        (_body(box=[[0, 40, 30], [0, 400, 100]]), 422, "outside the image"),
        (_body(positive=[[0, 5, 500]]), 422, "outside the image"),
        (_body(index=3), 422, "slice 3 is outside"),
        (_body(params={"method": "magic"}), 422, "parameter 'method'"),
        (_body(params={"sigma": 1}), 422, "no parameter 'sigma'"),
        (_body(box=[[0, 40], [0, 90]]), 422, "box"),
        (_body(scribble_radius=-1), 422, "scribble_radius"),
        (_body(previous={}), 422, "exactly one of"),
        (_body(previous={"proposal": 1, "annotation": True}), 422, "exactly one of"),
        (_body(previous={"proposal": 4242}), 422, "not one of your proposals"),
        (_body(previous={"plane": {"data": "!!"}}), 422, "base64"),
        (_body(previous={"plane": {"encoding": "nifti", "data": ""}}), 422, "raw-gzip"),
        (_body(previous={"plane": _raw(plane)}), 422, "(128, 128)"),
        ({"label": "liver"}, 422, "engine"),
    ]
    for body, code, fragment in cases:
        r = ann.post(url, json=body)
        assert r.status_code == code, (body, r.text)
        assert fragment in r.json()["message"], (body, r.json()["message"])
    assert ann.get(url).json() == []
    bad_accept = [
        ({"ids": []}, 422),
        ({"ids": [999]}, 404),
        ({"ids": [1], "mode": "mix"}, 422),
    ]
    for body, code in bad_accept:
        assert ann.post(f"{url}/accept", json=body).status_code == code, body
    assert ann.get(f"/api/images/{image_id}/annotations").json() == []


def test_viewers_and_other_users_are_refused(setup: dict[str, Any]) -> None:
    ann, bob, vic, image_id = setup["ann"], setup["bob"], setup["vic"], setup["image_id"]
    url = f"/api/images/{image_id}/proposals"
    r = vic.post(url, json=_body())
    assert r.status_code == 403 and "annotator" in r.json()["message"]
    pid = ann.post(url, json=_body()).json()["id"]
    assert vic.post(f"{url}/accept", json={"ids": [pid]}).status_code == 403
    r = bob.post(f"{url}/accept", json={"ids": [pid]})
    assert r.status_code == 403 and "another user" in r.json()["message"]
    assert bob.post(f"{url}/reject", json={"ids": [pid]}).status_code == 403
    assert bob.get(f"/api/proposals/{pid}").status_code == 404
    r = bob.post(url, json=_body(previous={"proposal": pid}))
    assert r.status_code == 422
    assert ann.get(f"/api/proposals/{pid}").json()["state"] == "pending"


def test_previous_plane_is_pasted_on_the_slice(setup: dict[str, Any]) -> None:
    ann, image_id = setup["ann"], setup["image_id"]
    plane = np.zeros((128, 128), np.uint8)
    plane[60:62, 60:65] = 1
    r = ann.post(f"/api/images/{image_id}/proposals", json=_body(previous={"plane": _raw(plane)}))
    assert r.status_code == 201, r.text
    assert r.json()["prompt"]["previous"] == {"voxels": 10}
    assert r.json()["prompt"]["previous_from"] == "plane"


def test_engines_named_in_settings_are_loaded_at_start_up(settings: Settings, ctx: Context) -> None:
    preload = settings.model_copy(update={"preload_engines": ["threshold", "no-such-engine"]})
    with TestClient(create_app(preload, ctx=ctx)) as client:
        for t in threading.enumerate():
            if t.name == "medlabel-preload-engines":
                t.join(timeout=60)
        assert client.get("/api/health").status_code == 200
    assert ctx.engines.loaded("threshold")
