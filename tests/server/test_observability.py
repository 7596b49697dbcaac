"""Readiness (503 when not ready, no authentication) and the access log (one line per
request with its request id, in JSON when configured)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from medlabel.core.logs import ContextFilter, JsonFormatter
from medlabel.core.settings import Settings
from medlabel.server.app import create_app
from medlabel.services.context import Context


class _Lines(logging.Handler):
    """Formats records as the server would in JSON mode."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.addFilter(ContextFilter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def json_lines() -> Iterator[_Lines]:
    handler = _Lines()
    logger = logging.getLogger("medlabel")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def _access(handler: _Lines) -> list[dict[str, object]]:
    records = [json.loads(line) for line in handler.lines]  # every line is one JSON object
    return [r for r in records if r["logger"] == "medlabel.access"]


def test_ready_reports_every_check(app_client: TestClient) -> None:
    r = app_client.get("/api/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["problems"] == []
    assert body["database"] == "ok" and body["schema_current"] is True
    assert body["blobs"] is True and body["jobs"] is True
    assert body["blob_store"]


def test_not_ready_is_a_503(
    settings: Settings, ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings, ctx=ctx)
    # without the lifespan (start-up) the job executor never started
    client = TestClient(app, base_url="http://testserver")
    r = client.get("/api/ready")
    assert r.status_code == 503
    assert r.json()["jobs"] is False
    assert "job executor" in r.json()["problems"][0]

    def broken(_: bytes) -> None:
        raise OSError("read-only file system")

    working = ctx.blobs.put_bytes
    with TestClient(app, base_url="http://testserver") as started:
        monkeypatch.setattr(ctx.blobs, "put_bytes", broken)
        r = started.get("/api/ready")
        assert r.status_code == 503
        assert r.json()["blobs"] is False
        assert r.json()["problems"] == ["the blob store is not writable"]
        assert "read-only" not in r.text  # details go to the log, not to the prober
        assert started.get("/api/health").status_code == 200  # still alive

        monkeypatch.setattr(ctx.blobs, "put_bytes", working)
        assert started.get("/api/ready").status_code == 200
        ctx.executor.shutdown(wait=False)  # a process on its way out takes no traffic
        r = started.get("/api/ready")
        assert r.status_code == 503 and r.json()["problems"] == [
            "the job executor is shutting down"
        ]


def test_access_log_lines_are_json_with_request_fields(
    admin: TestClient, json_lines: _Lines
) -> None:
    r = admin.get("/api/projects?token=secret-value", headers={"X-Request-ID": "abc-123"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "abc-123"
    (line,) = [a for a in _access(json_lines) if a["path"] == "/api/projects"]
    assert line["method"] == "GET" and line["status"] == 200
    assert line["request_id"] == "abc-123"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert isinstance(line["user_id"], int)
    assert line["level"] == "INFO" and str(line["time"]).endswith("+00:00")
    assert not any("secret-value" in text for text in json_lines.lines)

    # an invalid request id is replaced; anonymous requests have no user; errors logged
    r = admin.get("/api/nope", headers={"X-Request-ID": "bad id\twith spaces"})
    rid = r.headers["x-request-id"]
    assert rid != "bad id\twith spaces" and len(rid) == 32
    (line,) = [a for a in _access(json_lines) if a["path"] == "/api/nope"]
    assert line["status"] == 404 and line["request_id"] == rid


def test_anonymous_request_has_no_user(app_client: TestClient, json_lines: _Lines) -> None:
    app_client.get("/api/auth/me")
    (line,) = [a for a in _access(json_lines) if a["path"] == "/api/auth/me"]
    assert line["status"] == 401 and line["user_id"] is None
