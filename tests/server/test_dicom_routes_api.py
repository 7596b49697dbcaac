"""DICOM receiver routes over the API, and the receiver started and stopped with the app
when ``dicom_port`` is set (what ``medlabel serve`` does)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from medlabel.core.settings import Settings
from medlabel.security.roles import Role
from medlabel.server.app import create_app
from medlabel.services.context import open_context
from medlabel.services.projects import create_project
from medlabel.services.receiver import add_route
from medlabel.storage.db.models import Image
from tests.support import dcmtk
from tests.support.require import free_port


def _project(client: TestClient, name: str = "Chest") -> int:
    r = client.post("/api/projects", json={"name": name})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_routes_crud_and_permissions(admin: TestClient, make_client: object) -> None:
    pid = _project(admin)
    url = f"/api/projects/{pid}/dicom-routes"
    r = admin.post(url, json={"ae_title": "CHEST", "allowed_calling_aets": ["CT1"]})
    assert r.status_code == 201, r.text
    route = r.json()
    assert route["ae_title"] == "CHEST" and route["project_id"] == pid
    assert route["allowed_calling_aets"] == ["CT1"] and route["allowed_hosts"] == []
    assert admin.post(url, json={"ae_title": "CHEST"}).status_code == 409
    assert admin.post(url, json={"ae_title": "WAY_TOO_LONG_AE_TITLE"}).status_code == 422
    r = admin.post(url, json={"ae_title": "X", "allowed_hosts": ["pacs.example.org"]})
    assert r.status_code == 422 and "host names" in r.text
    assert [x["ae_title"] for x in admin.get(url).json()] == ["CHEST"]
    assert [x["ae_title"] for x in admin.get("/api/dicom-routes").json()] == ["CHEST"]
    # annotators of the project may neither see nor change routes
    anna = make_client("anna", Role.ANNOTATOR)  # type: ignore[operator]
    anna_id = anna.get("/api/auth/me").json()["id"]
    admin.put(f"/api/projects/{pid}/members/{anna_id}", json={"role": "annotator"})
    assert anna.get("/api/dicom-routes").json() == []
    assert anna.get(url).status_code == 403
    assert anna.post(url, json={"ae_title": "MINE"}).status_code == 403
    assert anna.delete(f"/api/dicom-routes/{route['id']}").status_code == 403
    assert admin.delete(f"/api/dicom-routes/{route['id']}").status_code == 204
    assert admin.delete(f"/api/dicom-routes/{route['id']}").status_code == 404
    assert admin.get(url).json() == []


def test_routes_need_authentication(app_client: TestClient) -> None:
    assert app_client.get("/api/dicom-routes").status_code == 401


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.services
def test_the_app_runs_the_receiver_while_it_serves(tmp_path: Path, ct_series: Path) -> None:
    dcmtk.require_dcmtk()
    port = free_port()
    settings = Settings(home=tmp_path / "home", preload_engines=[], dicom_port=port)
    ctx = open_context(settings)
    try:
        project = create_project(ctx, None, "Chest").id
        add_route(ctx, None, project, "CHEST")
        assert not _listening(port)
        with TestClient(create_app(settings, ctx=ctx)):
            assert dcmtk.echo(port, settings.dicom_ae_title).ok
            (result,) = dcmtk.store(port, "CHEST", sorted(ct_series.iterdir()))
            assert result.ok, result.output
        # shutdown: the receiver stopped, after importing what it had received
        assert not _listening(port)
        with ctx.db.read() as s:
            assert s.scalar(select(func.count()).select_from(Image)) == 1
    finally:
        ctx.close()
