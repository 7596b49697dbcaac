"""The audit log page in a real Chromium: an administrator opens it from the admin page,
sees their own login and the image reads, filters, verifies the chain; tampering shows;
non-admins are turned away."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.security.roles import Role
from medlabel.services.imports import import_paths
from medlabel.services.projects import add_labels, create_project
from medlabel.services.users import create_user, principal_of
from tests.browser.conftest import LiveServer, shot
from tests.conftest import sample_file

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery"


def _login(page: Any, server: LiveServer, username: str, hash_: str = "#/") -> None:
    page.goto(f"{server.url}/{hash_}")
    page.wait_for_selector("[data-testid=login-username]")
    page.fill("[data-testid=login-username]", username)
    page.fill("[data-testid=login-password]", PASSWORD)
    page.click("[data-testid=login-submit]")


def _rows(page: Any) -> list[str]:
    return [str(a) for a in page.eval_on_selector_all(
        "[data-testid=audit-row]", "rows => rows.map(r => r.dataset.action)"
    )]  # fmt: skip


def test_admin_sees_the_log_and_verifies_the_chain(live_server: LiveServer, page: Any) -> None:
    ctx = live_server.ctx
    admin = principal_of(create_user(ctx, "admin", PASSWORD, Role.ADMIN, full_name="Ada Admin"))
    project = create_project(ctx, admin, "Chest")
    add_labels(ctx, admin, project.id, [LabelSpec(name="finding", kind=LabelKind.BOX)])
    import_paths(ctx, admin, project.id, [sample_file("CT_small.dcm")])

    _login(page, live_server, "admin")
    page.click("[data-testid=nav-admin]")
    page.click("[data-testid=admin-audit-link]")
    page.wait_for_selector("[data-testid=audit-table] [data-testid=audit-row]")
    actions = _rows(page)
    assert actions[0] == "login"  # newest first: the login that opened this page
    assert {"user.create", "project.create", "label.create", "image.import"} <= set(actions)
    login = page.locator("[data-testid=audit-row][data-action=login]").first
    assert "admin" in login.inner_text() and "127.0.0.1" in login.inner_text()

    page.click("[data-testid=audit-verify]")
    result = page.locator("[data-testid=audit-verify-result] .alert-success")
    result.wait_for()
    assert "Chain intact" in result.inner_text()
    head_hash = page.inner_text("[data-testid=audit-head-hash]")
    assert len(head_hash) == 64
    shot(page, "audit-page")

    # filter by action prefix
    page.select_option("[data-testid=audit-filter-action]", "project.")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=audit-row]')]"
        ".every(r => r.dataset.action.startsWith('project.'))"
    )
    assert _rows(page) == ["project.create"]

    # someone edits a row behind the application's back
    with ctx.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 2"))
    page.fill("[data-testid=audit-anchor]", head_hash)
    page.click("[data-testid=audit-verify]")
    broken = page.locator("[data-testid=audit-verify-result] .alert-error")
    broken.wait_for()
    assert "row 2" in broken.inner_text() and "content changed" in broken.inner_text()
    shot(page, "audit-page-broken")


def test_non_admin_is_turned_away(live_server: LiveServer, page: Any) -> None:
    create_user(live_server.ctx, "rita", PASSWORD, Role.REVIEWER)
    _login(page, live_server, "rita", "#/admin/audit")
    page.wait_for_selector("text=The audit log is for administrators.")
    assert page.locator("[data-testid=audit-table]").count() == 0
