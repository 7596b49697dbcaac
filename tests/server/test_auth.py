"""Authentication: login, sessions, tokens, lockout, and that every route needs them."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from medlabel.core.settings import Settings
from medlabel.security.roles import Role
from medlabel.server.app import create_app
from medlabel.services.context import Context
from medlabel.services.users import create_user
from tests.conftest import PASSWORD

PUBLIC = {("POST", "/api/auth/login"), ("GET", "/api/health"), ("GET", "/api/ready")}


def test_fresh_install_has_no_users_and_no_default_login(app_client: TestClient) -> None:
    for username, password in [("admin", "admin"), ("demo", "demo"), ("admin", "password")]:
        r = app_client.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 401


def test_every_route_except_login_and_health_requires_authentication(
    app_client: TestClient,
) -> None:
    spec = app_client.get("/openapi.json").json()
    checked = 0
    for path, methods in spec["paths"].items():
        for method in methods:
            if (method.upper(), path) in PUBLIC:
                continue
            url = re.sub(r"\{[^}]+\}", "1", path)
            r = app_client.request(method.upper(), url)
            assert r.status_code == 401, f"{method.upper()} {path} answered {r.status_code}"
            checked += 1
    assert checked >= 30


def test_login_sets_httponly_cookie_and_logout_revokes_it(admin: TestClient) -> None:
    cookie = admin.cookies.get("medlabel_session")
    assert cookie and cookie.startswith("mlb_")
    assert admin.get("/api/auth/me").json()["username"] == "admin"
    assert admin.post("/api/auth/logout").status_code == 204
    # replaying the old cookie after logout must fail
    admin.cookies.set("medlabel_session", cookie)
    assert admin.get("/api/auth/me").status_code == 401


def test_set_cookie_flags(ctx: Context, settings: Settings) -> None:
    create_user(ctx, "u1", PASSWORD, Role.VIEWER)
    with TestClient(create_app(settings, ctx=ctx)) as client:
        r = client.post("/api/auth/login", json={"username": "u1", "password": PASSWORD})
    header = r.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "path=/" in header


def test_wrong_password_and_unknown_user_give_the_same_401(
    app_client: TestClient, ctx: Context
) -> None:
    create_user(ctx, "bob", PASSWORD, Role.ANNOTATOR)
    a = app_client.post("/api/auth/login", json={"username": "bob", "password": "nope-nope"})
    b = app_client.post("/api/auth/login", json={"username": "nobody", "password": "nope-nope"})
    assert a.status_code == b.status_code == 401
    assert a.json()["message"] == b.json()["message"]


def test_repeated_failures_lock_the_account(app_client: TestClient, ctx: Context) -> None:
    create_user(ctx, "carol", PASSWORD, Role.ANNOTATOR)
    for _ in range(5):  # settings fixture: login_max_failures=5
        app_client.post("/api/auth/login", json={"username": "carol", "password": "wrong-one"})
    r = app_client.post("/api/auth/login", json={"username": "carol", "password": PASSWORD})
    assert r.status_code == 401
    assert "locked" in r.json()["message"]


def test_api_token_lifecycle(admin: TestClient, app_client: TestClient) -> None:
    r = admin.post("/api/auth/tokens", json={"name": "script", "days": 30})
    assert r.status_code == 201
    token, token_id = r.json()["token"], r.json()["id"]
    headers = {"Authorization": f"Bearer {token}"}
    assert app_client.get("/api/auth/me", headers=headers).json()["username"] == "admin"
    listed = admin.get("/api/auth/tokens").json()
    assert [t["id"] for t in listed] == [token_id] and "token" not in listed[0]
    assert admin.delete(f"/api/auth/tokens/{token_id}").status_code == 204
    assert app_client.get("/api/auth/me", headers=headers).status_code == 401


def test_garbage_bearer_token_is_rejected(app_client: TestClient) -> None:
    for value in ["Bearer x", "Bearer " + "a" * 500, "Basic Zm9vOmJhcg=="]:
        assert app_client.get("/api/auth/me", headers={"Authorization": value}).status_code == 401


def test_cookie_write_from_another_origin_is_refused(admin: TestClient) -> None:
    r = admin.post("/api/projects", json={"name": "x"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    ok = admin.post("/api/projects", json={"name": "x"}, headers={"Origin": "http://testserver"})
    assert ok.status_code == 201


def test_deactivated_user_loses_sessions(admin: TestClient, make_client: object) -> None:
    alice = make_client("alice", Role.ANNOTATOR)  # type: ignore[operator]
    uid = alice.get("/api/auth/me").json()["id"]
    assert admin.patch(f"/api/users/{uid}", json={"is_active": False}).status_code == 200
    assert alice.get("/api/auth/me").status_code == 401


def test_only_admins_manage_users(make_client: object) -> None:
    bob = make_client("bob", Role.REVIEWER)  # type: ignore[operator]
    r = bob.post("/api/users", json={"username": "x", "password": PASSWORD})
    assert r.status_code == 403
    assert bob.get("/api/users").status_code == 403


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"username": "bad name", "password": PASSWORD}, "usernames"),
        ({"username": "ok", "password": "short"}, "at least 8"),
        ({"username": "ok", "password": PASSWORD, "role": "god"}, "role"),
    ],
)
def test_user_creation_validates(admin: TestClient, body: dict[str, str], fragment: str) -> None:
    r = admin.post("/api/users", json=body)
    assert r.status_code == 422
    assert fragment in r.json()["message"]


def test_the_last_admin_cannot_be_demoted(admin: TestClient) -> None:
    me = admin.get("/api/auth/me").json()
    other = admin.post("/api/users", json={"username": "x2", "password": PASSWORD}).json()
    r = admin.patch(f"/api/users/{me['id']}", json={"role": "viewer"})
    assert r.status_code == 409
    assert admin.patch(f"/api/users/{other['id']}", json={"role": "admin"}).status_code == 200
    assert admin.patch(f"/api/users/{me['id']}", json={"role": "viewer"}).status_code == 200


def test_revocation_is_immediate_in_this_process_despite_the_cache(admin: TestClient) -> None:
    token = admin.post("/api/auth/tokens", json={"name": "t"}).json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    for _ in range(3):  # now cached
        assert admin.get("/api/auth/me", headers=headers).status_code == 200
    admin.delete(f"/api/auth/tokens/{token['id']}")
    assert admin.get("/api/auth/me", headers=headers).status_code == 401
