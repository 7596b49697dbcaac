"""The project's Evaluations tab in a real Chromium: a small reader study is set up through
the API (two readers outline a lesion on two real images, the reviewer approves one
reader's work, which becomes the reference); the reviewer evaluates the other reader from
the tab, follows the job, sees its mean Dice (as the API reports it) with its confidence
interval, and opens the stored report in a new tab."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from medlabel.security.roles import Role
from medlabel.services.masks import encode_raw_gzip
from medlabel.services.users import create_user
from tests.browser.conftest import LiveServer, shot
from tests.conftest import PASSWORD, sample_file

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT = 60_000  # ms: generous, a loaded 2-core machine
FILES = ("CT_small.dcm", "MR_small.dcm")


@dataclass
class Study:
    project_id: int
    users: dict[str, int]  # username -> id
    expected_dice: list[float]  # per image, ann1 against ann2 (the reference)


def _client(server: LiveServer, username: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=60)
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, (r.request.url, r.status_code, r.text)
    return r.json()


def _mask_payload(mask: np.ndarray) -> dict[str, str]:
    return {
        "encoding": "raw-gzip",
        "dtype": "uint8",
        "data": base64.b64encode(encode_raw_gzip(mask)).decode(),
    }


def _read(client: httpx.Client, image_id: int, mask: np.ndarray) -> dict[str, Any]:
    """Save a reading with a mask and submit it; the annotation."""
    body = {"content": {}, "mask": _mask_payload(mask)}
    ann = _ok(client.post(f"/api/images/{image_id}/annotations", json=body), 201)
    submit = {"base_version": ann["version"]}
    submitted: dict[str, Any] = _ok(
        client.post(f"/api/annotations/{ann['id']}/submit", json=submit)
    )
    return submitted


@pytest.fixture
def study(live_server: LiveServer) -> Iterator[Study]:
    create_user(live_server.ctx, "admin", PASSWORD, Role.ADMIN)
    admin = _client(live_server, "admin")
    pid = _ok(admin.post("/api/projects", json={"name": "Lesion study"}), 201)["id"]
    _ok(
        admin.post(
            f"/api/projects/{pid}/labels", json=[{"name": "lesion", "kind": "mask", "value": 1}]
        ),
        201,
    )
    files = [("files", (name, sample_file(name).read_bytes())) for name in FILES]
    image_ids = sorted(
        _ok(admin.post(f"/api/projects/{pid}/imports", files=files), 201)["image_ids"]
    )
    assert len(image_ids) == 2
    _ok(admin.patch(f"/api/projects/{pid}", json={"readers_per_image": 2}))
    users = {}
    for name, role in (("ann1", "annotator"), ("ann2", "annotator"), ("rita", "reviewer")):
        users[name] = _ok(
            admin.post("/api/users", json={"username": name, "password": PASSWORD, "role": role}),
            201,
        )["id"]
        _ok(admin.put(f"/api/projects/{pid}/members/{users[name]}", json={"role": role}))

    ann1, ann2, rita = (_client(live_server, n) for n in ("ann1", "ann2", "rita"))
    expected = []
    for k, image_id in enumerate(image_ids):
        shape = _ok(admin.get(f"/api/images/{image_id}"))["shape"]
        a = np.zeros(shape, np.uint8)
        a[0, 10:30, 10:30] = 1
        b = np.zeros(shape, np.uint8)
        b[0, 12 + 3 * k : 32, 10:34] = 1  # the second image agrees less
        _read(ann1, image_id, a)
        reference = _read(ann2, image_id, b)
        _ok(
            rita.post(
                f"/api/annotations/{reference['id']}/approve",
                json={"base_version": reference["version"]},
            )
        )
        expected.append(2 * int((a & b).sum()) / int(a.sum() + b.sum()))
    yield Study(pid, users, expected)
    for c in (admin, ann1, ann2, rita):
        c.close()


def test_the_reviewer_evaluates_a_reader_and_opens_the_report(
    live_server: LiveServer, page: Any, study: Study
) -> None:
    page.set_default_timeout(TIMEOUT)
    page.goto(f"{live_server.url}/#/projects/{study.project_id}")
    page.fill("[data-testid=login-username]", "rita")
    page.fill("[data-testid=login-password]", PASSWORD)
    page.click("[data-testid=login-submit]")

    page.click("[data-testid=tab-evaluations]")
    empty = page.locator("[data-testid=evaluations-tab] [data-testid=evaluations-empty]")
    empty.wait_for()
    assert "approve some readings or build a consensus first" in empty.inner_text()
    reader = page.locator("[data-testid=evaluation-reader]")
    page.wait_for_function(
        "(id) => [...document.querySelectorAll('[data-testid=evaluation-reader] option')]"
        ".some((o) => o.value === String(id))",
        arg=study.users["ann1"],
    )
    # the engine select says there is none: nobody ran a model here
    page.select_option("[data-testid=evaluation-subject]", "engine")
    assert page.locator("[data-testid=evaluation-engine]").is_disabled()
    assert page.locator("[data-testid=evaluation-start]").is_disabled()
    page.select_option("[data-testid=evaluation-subject]", "reader")
    assert "2 readings" in reader.inner_text()

    # ann2's readings are the reference: nothing to compare them with (422, shown inline)
    page.select_option("[data-testid=evaluation-reader]", str(study.users["ann2"]))
    page.click("[data-testid=evaluation-start]")
    error = page.locator("[data-testid=evaluation-error]")
    error.wait_for()
    assert "nothing to evaluate" in error.inner_text()

    # ann1 against the reference: the job is followed, then the new row appears
    page.select_option("[data-testid=evaluation-reader]", str(study.users["ann1"]))
    page.click("[data-testid=evaluation-start]")
    page.wait_for_selector("[data-testid=evaluation-progress]")
    page.wait_for_selector("[data-testid=evaluation-progress][data-state=succeeded]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=evaluation-log]').textContent"
        ".includes('mean Dice')"
    )
    progress = page.locator("[data-testid=evaluation-progress] [data-testid=job-progress]")
    assert progress.get_attribute("data-done") == progress.get_attribute("data-total") == "2"
    row = page.locator("[data-testid=evaluations-table] [data-testid=evaluation-row]")
    row.wait_for()
    assert row.count() == 1

    (listed,) = page.request.get(
        f"{live_server.url}/api/projects/{study.project_id}/evaluations"
    ).json()
    dice = listed["summary"]["1"]["dice"]
    assert abs(dice["mean"] - float(np.mean(study.expected_dice))) < 1e-9
    shown = row.locator("[data-testid=evaluation-dice][data-label='1']")
    assert float(shown.get_attribute("data-value") or "nan") == pytest.approx(
        dice["mean"], abs=1e-12
    )
    assert shown.locator("strong").inner_text() == f"{dice['mean']:.3f}"
    assert f"{dice['ci_low']:.3f}–{dice['ci_high']:.3f}" in shown.inner_text()
    assert row.locator("[data-testid=evaluation-subject-name]").inner_text() == "ann1"
    assert row.locator("[data-testid=evaluation-cases]").inner_text() == "2"
    hd95 = listed["summary"]["1"]["hd95"]["mean"]
    assert f"{hd95:.1f} mm" in row.locator("[data-testid=evaluation-hd95]").inner_text()
    chart = row.locator("[data-testid=evaluation-dice-chart]")
    assert chart.locator("[data-testid=box-row] path.mean").count() == 1
    page.locator("[data-testid=toast-success]").wait_for(state="detached")  # "Evaluation ready"
    row.scroll_into_view_if_needed()
    shot(page, "evaluations-tab")

    # the report opens in a new tab: a self-contained page with tables and SVG plots
    with page.context.expect_page(timeout=TIMEOUT) as opened:
        row.locator("[data-testid=evaluation-open-report]").click()
    report = opened.value
    report.wait_for_load_state()
    assert report.url.endswith(f"/api/evaluations/{listed['id']}/report.html")
    report.locator("table").first.wait_for(timeout=TIMEOUT)
    assert report.locator("svg").count() >= 1
    assert "ann1" in report.locator("body").inner_text()
    report.set_viewport_size({"width": 1280, "height": 1600})  # the summary table and plots
    shot(report, "evaluation-report")
    report.close()
