"""The project's Jobs tab in a real Chromium: an export started on the Exports tab runs
as a job and is seen reaching ``succeeded``; a running job is cancelled and retried from
the page, its log followed while it runs."""

from __future__ import annotations

from typing import Any

import pytest

from medlabel.annotation.content import AnnotationContent, Box
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.security.roles import Role
from medlabel.services.annotations import save_annotation
from medlabel.services.imports import import_paths
from medlabel.services.jobs import submit_job
from medlabel.services.projects import add_labels, create_project
from medlabel.services.users import create_user, principal_of
from tests.browser.conftest import LiveServer, shot
from tests.conftest import PASSWORD, sample_file
from tests.jobs.conftest import Probe, register_test_kinds

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _row(page: Any, job_id: int) -> Any:
    return page.locator(f"[data-testid=job-row][data-job-id='{job_id}']")


def _wait_state(page: Any, job_id: int, state: str) -> None:
    page.wait_for_selector(
        f"[data-testid=job-row][data-job-id='{job_id}'][data-state={state}]", timeout=30_000
    )


def test_jobs_tab_follows_an_export_and_cancels_and_retries_a_job(
    live_server: LiveServer, page: Any
) -> None:
    ctx = live_server.ctx
    admin = principal_of(create_user(ctx, "admin", PASSWORD, Role.ADMIN, full_name="Ada Admin"))
    project = create_project(ctx, admin, "Chest study")
    add_labels(ctx, admin, project.id, [LabelSpec(name="finding", kind=LabelKind.BOX)])
    (image_id,) = import_paths(ctx, admin, project.id, [sample_file("CT_small.dcm")]).image_ids
    box = Box(label="finding", start=(-0.5, 10, 10), end=(0.5, 30, 40))
    save_annotation(ctx, admin, image_id, content=AnnotationContent(boxes=[box]))
    probe = Probe()
    register_test_kinds(ctx.job_kinds, probe)  # a job that waits for the test's go-ahead

    page.goto(f"{live_server.url}/#/projects/{project.id}")
    page.fill("[data-testid=login-username]", "admin")
    page.fill("[data-testid=login-password]", PASSWORD)
    page.click("[data-testid=login-submit]")

    # An export started on the Exports tab is a job: it is followed there...
    page.click("[data-testid=tab-exports]")
    page.select_option("[data-testid=export-format]", "csv")
    page.click("[data-testid=export-submit]")
    page.locator("[data-testid=export-result]").wait_for(timeout=30_000)
    assert "Exported 1 image as csv" in page.inner_text("[data-testid=export-result]")

    # ...and listed on the Jobs tab, succeeded, with its log and download.
    page.click("[data-testid=tab-jobs]")
    page.wait_for_selector("[data-testid=jobs-table]")
    export_id = int(page.get_attribute("[data-testid=job-row]", "data-job-id") or 0)
    _wait_state(page, export_id, "succeeded")
    row = _row(page, export_id)
    assert "Export csv" in row.inner_text() and "Ada" not in row.inner_text()
    assert "admin" in row.inner_text()
    progress = row.locator("[data-testid=job-progress]")
    assert progress.get_attribute("data-done") == progress.get_attribute("data-total") != "0"
    assert row.locator("[data-testid=job-download]").count() == 1
    assert row.locator("[data-testid=job-cancel]").count() == 0
    row.locator("[data-testid=job-show-logs]").click()
    logs = page.locator("[data-testid=job-logs]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=job-logs]').textContent.includes('succeeded')"
    )
    assert "exporting latest revisions as csv" in logs.inner_text()

    # A long job started elsewhere (the API) shows up running; its log follows it.
    waiting = submit_job(
        ctx, admin, "test.project.steps", {"steps": 3, "wait": True}, project_id=project.id
    ).job.id
    assert probe.started.wait(20)
    page.click("[data-testid=jobs-refresh]")
    _wait_state(page, waiting, "running")
    _row(page, waiting).locator("[data-testid=job-show-logs]").click()
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=job-logs]').textContent"
        f".includes('attempt 1 of job {waiting}')"
    )
    shot(page, "jobs-page-running")

    # Cancel it from the page: it stops at its next check and ends cancelled.
    _row(page, waiting).locator("[data-testid=job-cancel]").click()
    _wait_state(page, waiting, "cancelled")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=job-logs]').textContent"
        ".includes('cancellation requested by admin')"
    )

    # Retry: a new attempt that runs to the end this time.
    probe.release.set()
    _row(page, waiting).locator("[data-testid=job-retry]").click()
    _wait_state(page, waiting, "succeeded")
    assert "attempt 2" in _row(page, waiting).inner_text()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=job-logs]').textContent.includes('attempt 2"
        " of job')"
    )
    assert probe.attempts == [(waiting, 1), (waiting, 2)]
    shot(page, "jobs-page")
