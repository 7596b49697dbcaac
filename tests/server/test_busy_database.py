"""An overloaded database answers 503 with Retry-After (clients retry), never a 500;
other database errors stay 500s without details."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from medlabel.services import projects


@pytest.mark.parametrize(
    "exc",
    [
        OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked")),
        SQLAlchemyTimeoutError("QueuePool limit of size 5 overflow 10 reached"),
    ],
)
def test_busy_database_is_503(
    admin: TestClient, monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> None:
    def busy(*_: object, **__: object) -> None:
        raise exc

    monkeypatch.setattr(projects, "list_projects", busy)
    r = admin.get("/api/projects")
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "2"
    assert r.json()["error"] == "busy"


def test_other_database_errors_stay_500(admin: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise OperationalError("SELECT", {}, Exception("no such table: secret_table"))

    monkeypatch.setattr(projects, "list_projects", broken)
    with TestClient(admin.app, raise_server_exceptions=False) as client:
        client.cookies.update(admin.cookies)
        r = client.get("/api/projects")
    assert r.status_code == 500
    assert "secret_table" not in r.text
