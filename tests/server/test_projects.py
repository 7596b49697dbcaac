"""Projects, membership, visibility and label schemas over the API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from medlabel.security.roles import Role


def _project(client: TestClient, name: str = "Liver study") -> dict:
    r = client.post("/api/projects", json={"name": name, "description": "CT livers"})
    assert r.status_code == 201, r.text
    return r.json()


def test_create_and_list_projects(admin: TestClient) -> None:
    p = _project(admin)
    assert p["role"] == "reviewer" and p["total_images"] == 0
    assert p["deid"] == {
        "shift_dates": False,
        "retain_patient_characteristics": False,
        "retain_descriptions": False,
    }
    assert [x["name"] for x in admin.get("/api/projects").json()] == ["Liver study"]
    dup = admin.post("/api/projects", json={"name": "liver STUDY"})
    assert dup.status_code == 409


def test_users_only_see_their_projects(admin: TestClient, make_client: object) -> None:
    p = _project(admin)
    alice = make_client("alice", Role.ANNOTATOR)  # type: ignore[operator]
    assert alice.get("/api/projects").json() == []
    assert alice.get(f"/api/projects/{p['id']}").status_code == 404
    assert alice.get(f"/api/projects/{p['id']}/images").status_code == 404
    alice_id = alice.get("/api/auth/me").json()["id"]
    r = admin.put(f"/api/projects/{p['id']}/members/{alice_id}", json={})
    assert r.status_code == 200 and r.json()["role"] == "annotator"
    assert [x["name"] for x in alice.get("/api/projects").json()] == ["Liver study"]
    # annotators cannot change the schema or membership
    r = alice.post(f"/api/projects/{p['id']}/labels", json=[{"name": "x", "kind": "mask"}])
    assert r.status_code == 403
    assert admin.delete(f"/api/projects/{p['id']}/members/{alice_id}").status_code == 204
    assert alice.get(f"/api/projects/{p['id']}").status_code == 404


def test_annotators_cannot_create_projects(make_client: object) -> None:
    alice = make_client("alice", Role.ANNOTATOR)  # type: ignore[operator]
    assert alice.post("/api/projects", json={"name": "mine"}).status_code == 403


def test_reviewer_creates_project_and_becomes_member(make_client: object) -> None:
    rita = make_client("rita", Role.REVIEWER)  # type: ignore[operator]
    p = _project(rita, "Rita's")
    assert p["role"] == "reviewer"
    members = rita.get(f"/api/projects/{p['id']}/members").json()
    assert [(m["user"]["username"], m["role"]) for m in members] == [("rita", "reviewer")]


def test_label_schema(admin: TestClient) -> None:
    p = _project(admin)
    body = [
        {
            "name": "liver",
            "kind": "mask",
            "code": {"value": "10200004", "scheme": "SCT", "meaning": "Liver"},
        },
        {"name": "tumour", "kind": "mask", "color": "#FF0000"},
        {"name": "nodule", "kind": "box"},
        {"name": "apex", "kind": "point"},
        {"name": "cirrhosis", "kind": "classification"},
        {"name": "remark", "kind": "note"},
    ]
    r = admin.post(f"/api/projects/{p['id']}/labels", json=body)
    assert r.status_code == 201, r.text
    labels = {lab["name"]: lab for lab in r.json()}
    assert labels["liver"]["value"] == 1 and labels["tumour"]["value"] == 2
    assert labels["nodule"]["value"] is None
    assert labels["tumour"]["color"] == "#ff0000"
    assert labels["liver"]["code"]["meaning"] == "Liver"
    assert len({lab["color"] for lab in labels.values()}) == 6


def test_label_schema_rejects_bad_input_atomically(admin: TestClient) -> None:
    p = _project(admin)
    url = f"/api/projects/{p['id']}/labels"
    cases = [
        ([{"name": "a", "kind": "mask", "color": "red"}], 422),
        ([{"name": "a", "kind": "blob"}], 422),
        ([{"name": "a/b", "kind": "mask"}], 422),
        ([{"name": "a", "kind": "box", "value": 3}], 422),
        ([{"name": "a", "kind": "mask"}, {"name": "A", "kind": "box"}], 409),
        ([{"name": "a", "kind": "mask", "value": 70000}], 422),
    ]
    for body, code in cases:
        r = admin.post(url, json=body)
        assert r.status_code == code, (body, r.text)
        assert r.json()["message"]
    assert admin.get(url).json() == []  # nothing half-stored


def test_label_rename_and_delete(admin: TestClient) -> None:
    p = _project(admin)
    (lab,) = admin.post(
        f"/api/projects/{p['id']}/labels", json=[{"name": "a", "kind": "mask"}]
    ).json()
    r = admin.patch(f"/api/labels/{lab['id']}", json={"name": "b", "color": "#00ff00"})
    assert r.status_code == 200 and r.json()["name"] == "b"
    assert admin.delete(f"/api/labels/{lab['id']}").status_code == 204
    assert admin.get(f"/api/projects/{p['id']}/labels").json() == []


def test_health_and_ready_are_public(app_client: TestClient) -> None:
    assert app_client.get("/api/health").json()["status"] == "ok"
    ready = app_client.get("/api/ready").json()
    assert ready["status"] == "ok" and ready["schema_current"] is True


def test_unknown_route_is_a_json_404(admin: TestClient) -> None:
    r = admin.get("/api/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_malformed_json_is_a_422_with_a_message(admin: TestClient) -> None:
    r = admin.post(
        "/api/projects", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["message"]
