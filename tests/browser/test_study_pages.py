"""The reader-study pages in a real Chromium against a live server: study settings,
distributing images, progress, reassigning, the agreement dashboard over two readers'
different masks, and an annotator's queue."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import httpx
import numpy as np
import pytest

import tests.browser.test_pages as pages
from medlabel.security.roles import Role
from medlabel.services.imports import import_paths
from tests.browser.conftest import LiveServer, shot
from tests.conftest import PASSWORD, sample_file
from tests.services.reader_study import user

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FILES = ("CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm")
TIMEOUT = 60_000  # ms: a loaded two-core machine


def _client(server: LiveServer, name: str) -> httpx.Client:
    client = httpx.Client(base_url=f"{server.url}/api", timeout=60)
    r = client.post("/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


def _mask(shape: list[int], rows: slice, cols: slice) -> dict[str, str]:
    arr = np.zeros(shape[:3], np.uint8)
    arr[0, rows, cols] = 1
    return {"encoding": "raw-gzip", "data": base64.b64encode(gzip.compress(arr.tobytes())).decode()}


def _read(client: httpx.Client, image_id: int, body: dict[str, Any], *, submit: bool) -> Any:
    r = client.post(f"/images/{image_id}/annotations", json=body)
    assert r.status_code == 201, r.text
    ann = r.json()
    if submit:
        r = client.post(f"/annotations/{ann['id']}/submit", json={"base_version": ann["version"]})
        assert r.status_code == 200, r.text
        ann = r.json()
    return ann


@pytest.fixture
def study(live_server: LiveServer) -> dict[str, Any]:
    """A project over three real images with a reviewer (rita) and two annotators."""
    ctx = live_server.ctx
    people = {
        "admin": user(ctx, "admin", Role.ADMIN),
        "rita": user(ctx, "rita", Role.REVIEWER),
        "ann": user(ctx, "ann", Role.ANNOTATOR),
        "bob": user(ctx, "bob", Role.ANNOTATOR),
    }
    admin = _client(live_server, "admin")
    p = admin.post("/projects", json={"name": "Nodule study"}).json()
    labels = [{"name": "lesion", "kind": "mask"}, {"name": "malignant", "kind": "classification"}]
    assert admin.post(f"/projects/{p['id']}/labels", json=labels).status_code == 201
    for name, role in (("rita", "reviewer"), ("ann", "annotator"), ("bob", "annotator")):
        r = admin.put(f"/projects/{p['id']}/members/{people[name].id}", json={"role": role})
        assert r.status_code == 200, r.text
    ids = sorted(import_paths(ctx, None, p["id"], [sample_file(f) for f in FILES]).image_ids)
    clients = {n: _client(live_server, n) for n in ("rita", "ann", "bob")}
    return {"pid": p["id"], "ids": ids, "admin": admin, "ids_of": people, **clients}


def _login(page: Any, server: LiveServer, name: str, hash_: str) -> None:
    page.set_default_timeout(TIMEOUT)
    page.route(
        "**/workspace/workspace.js",
        lambda r: r.fulfill(status=200, content_type="text/javascript", body=pages.WORKSPACE_STUB),
    )
    page.goto(f"{server.url}/{hash_}")
    page.fill("[data-testid=login-username]", name)
    page.fill("[data-testid=login-password]", PASSWORD)
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=project-title]")


def _progress_matches(page: Any, api: dict[str, Any]) -> None:
    """Wait until the progress table shows exactly the API's numbers for every reader."""
    cols = ["assigned", "not_started", "started", "rejected", "submitted", "approved", "remaining"]
    readers = [u for u in api["users"] if u["role"] != "viewer" or u["assigned"]]
    want = {u["username"]: {c: str(u[c]) for c in cols} for u in readers}
    page.wait_for_function(
        """([want, cols]) => {
            const rows = [...document.querySelectorAll('[data-testid=progress-row]')];
            if (rows.length !== Object.keys(want).length) return false;
            return rows.every(r => {
                const w = want[r.dataset.username];
                return w && cols.every(c =>
                    r.querySelector(`[data-col=${c}]`).textContent === w[c]);
            });
        }""",
        arg=[want, cols],
    )
    totals = {
        "total-images": api["images"],
        "total-complete": api["images_complete"],
        "total-approved": api["images_approved"],
        "total-open": api["open_slots"],
    }
    for testid, value in totals.items():
        assert page.inner_text(f"[data-testid={testid}] strong") == str(value), testid


def _svg_drawn(page: Any, selector: str) -> None:
    """The chart has a real size and coloured marks (not a blank box)."""
    box = page.locator(selector).bounding_box()
    assert box and box["width"] > 100 and box["height"] > 50, (selector, box)
    fills = page.eval_on_selector_all(
        f"{selector} rect, {selector} path",
        "els => els.map(e => getComputedStyle(e).fill).filter(f => f && f !== 'none')",
    )
    assert len(fills) >= 2, (selector, fills)


def test_reader_study_pages_and_agreement_dashboard(
    live_server: LiveServer, page: Any, browser: Any, study: dict[str, Any]
) -> None:
    pid, ids, admin, rita = study["pid"], study["ids"], study["admin"], study["rita"]
    _login(page, live_server, "rita", f"#/projects/{pid}")

    # --- settings: a client-side validation message, then saved through PATCH
    page.click("[data-testid=tab-study]")
    settings = page.locator("[data-testid=study-settings]")
    settings.wait_for()
    page.fill("[data-testid=readers-per-image]", "0")
    page.click("[data-testid=study-save]")
    message = page.locator("[data-testid=study-settings-message] [role=alert]")
    message.wait_for()
    assert "1 to 20" in message.inner_text()
    assert admin.get(f"/projects/{pid}").json()["readers_per_image"] == 1
    page.fill("[data-testid=readers-per-image]", "2")
    page.check("[data-testid=blinded]")
    page.click("[data-testid=study-save]")
    page.wait_for_selector("[data-testid=study-saved]")
    saved = admin.get(f"/projects/{pid}").json()
    assert (saved["readers_per_image"], saved["blinded"]) == (2, True)

    # --- distribute: every image gets the two annotators
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=distribute-reader]:checked').length === 2"
    )
    page.click("[data-testid=distribute]")
    result = page.locator("[data-testid=distribute-result]")
    result.wait_for()
    assert "Created 6 assignments" in result.inner_text()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=assignment-row]').length === 3"
    )
    table = page.locator("[data-testid=assignments-table]")
    for image_id in ids:
        row = table.locator(f"[data-testid=assignment-row][data-image-id='{image_id}']")
        names = row.locator("[data-testid=assignment]").evaluate_all(
            "els => els.map(e => e.dataset.username).sort()"
        )
        assert names == ["ann", "bob"], (image_id, names)
        assert "2/2" in row.inner_text()
    api_assignments = rita.get(f"/projects/{pid}/assignments").json()
    assert sorted((a["image_id"], a["username"]) for a in api_assignments) == sorted(
        (i, n) for i in ids for n in ("ann", "bob")
    )
    _progress_matches(page, rita.get(f"/projects/{pid}/progress").json())
    shot(page, "study-distributed")

    # --- agreement before any reading is finished: the empty state explains why
    page.click("[data-testid=tab-agreement]")
    empty = page.locator("[data-testid=agreement-empty]")
    empty.wait_for()
    assert "no image has two finished readings yet" in empty.inner_text().lower()
    shot(page, "agreement-empty")

    # --- readings through the API: two different masks on the first image, a draft by
    # ann on the second, and rita approves bob's reading
    image = admin.get(f"/images/{ids[0]}").json()
    shape = image["shape"]
    ann_body = {
        "content": {"classes": ["malignant"]},
        "mask": _mask(shape, slice(4, 40), slice(4, 40)),
    }
    bob_body = {"content": {"classes": []}, "mask": _mask(shape, slice(10, 44), slice(8, 40))}
    _read(study["ann"], ids[0], ann_body, submit=True)
    bob_reading = _read(study["bob"], ids[0], bob_body, submit=True)
    draft_shape = admin.get(f"/images/{ids[1]}").json()["shape"]
    draft = {"content": {"classes": []}, "mask": _mask(draft_shape, slice(2, 6), slice(2, 6))}
    _read(study["ann"], ids[1], draft, submit=False)
    r = rita.post(
        f"/annotations/{bob_reading['id']}/review",
        json={"decision": "approve", "base_version": bob_reading["version"]},
    )
    assert r.status_code == 200, r.text

    # --- the dashboard: heatmap, readers against the majority vote, HD95, worst images
    agreement = rita.get(f"/projects/{pid}/agreement").json()
    assert agreement["images_compared"] == 1
    (pair,) = [p for p in agreement["pairs"] if p["label"] == "lesion"]
    dice = pair["dice"]["mean"]
    assert 0.3 < dice < 0.95, dice
    page.click("[data-testid=agreement-refresh]")
    dashboard = page.locator("[data-testid=agreement-dashboard]")
    dashboard.wait_for()
    heat = page.locator("[data-testid=agreement-heatmap]")
    cells = heat.locator("[data-testid=heatmap-cell]")
    assert cells.count() == 4  # ann, bob × ann, bob
    for a, b in (("ann", "bob"), ("bob", "ann")):
        cell = heat.locator(f"[data-testid=heatmap-cell][data-a={a}][data-b={b}]")
        assert cell.locator("text").text_content() == f"{dice:.3f}"
        assert abs(float(cell.get_attribute("data-value")) - dice) < 1e-9
    labels = heat.locator("svg text.row-label").all_text_contents()
    assert labels == ["ann", "bob"]
    _svg_drawn(page, "[data-testid=agreement-heatmap-svg]")

    readers = page.locator("[data-testid=agreement-readers]")
    summary = page.locator("[data-testid=agreement-reader-summary]")
    assert {r["reader"] for r in agreement["readers"]} == {"ann", "bob"}
    for row in agreement["readers"]:
        mean = row["dice"]["mean"]
        tr = summary.locator(f"[data-testid=agreement-reader-row][data-reader={row['reader']}]")
        assert tr.locator("[data-col=dice]").inner_text() == f"{mean:.3f}"
        box = readers.locator(f"[data-testid=box-row][data-reader={row['reader']}]")
        assert abs(float(box.get_attribute("data-mean")) - mean) < 1e-9
        assert box.locator("path.mean").count() == 1
    _svg_drawn(page, "[data-testid=agreement-readers-plot]")
    _svg_drawn(page, "[data-testid=agreement-hd95-chart]")

    images = page.locator("[data-testid=agreement-images] [data-testid=agreement-image-row]")
    assert images.count() == 1
    first = agreement["images"][0]
    assert images.first.locator("[data-col=readers]").inner_text() == "ann, bob"
    assert f"{first['mean_dice']:.3f}" in images.first.locator("[data-col=mean-dice]").inner_text()
    kappa = page.locator("[data-testid=agreement-class-row][data-name=malignant]")
    assert kappa.count() == 1 and "ann – bob" in kappa.inner_text()
    page.locator("[data-testid=agreement-summary]").scroll_into_view_if_needed()
    shot(page, "agreement-dashboard")
    page.locator("[data-testid=agreement-images]").scroll_into_view_if_needed()
    shot(page, "agreement-images")

    # --- progress after the readings (the tab refreshes when shown again)
    page.click("[data-testid=tab-study]")
    progress = rita.get(f"/projects/{pid}/progress").json()
    by_name = {u["username"]: u for u in progress["users"]}
    assert (by_name["ann"]["submitted"], by_name["ann"]["started"]) == (1, 1)
    assert by_name["bob"]["approved"] == 1
    _progress_matches(page, progress)
    states = table.locator(
        f"[data-testid=assignment-row][data-image-id='{ids[0]}'] [data-testid=assignment]"
    ).evaluate_all("els => els.map(e => e.dataset.username + ':' + e.dataset.state).sort()")
    assert states == ["ann:submitted", "bob:approved"]
    page.locator("[data-testid=progress-table]").scroll_into_view_if_needed()
    shot(page, "study-progress")

    # --- reassign bob's untouched reading of the last image to rita, in the dialog
    last = table.locator(f"[data-testid=assignment-row][data-image-id='{ids[2]}']")
    last.locator("[data-testid=assignment][data-username=bob] [data-testid=reassign]").click()
    dialog = page.locator("[data-testid=reassign-dialog]")
    dialog.wait_for()
    dialog.locator("[data-testid=reassign-user]").select_option(str(study["ids_of"]["rita"].id))
    shot(page, "study-reassign")
    dialog.locator("[data-testid=dialog-submit]").click()
    dialog.wait_for(state="detached")
    last.locator("[data-testid=assignment][data-username=rita]").wait_for()
    owners = {
        a["username"] for a in rita.get(f"/projects/{pid}/assignments?image_id={ids[2]}").json()
    }
    assert owners == {"ann", "rita"}
    _progress_matches(page, rita.get(f"/projects/{pid}/progress").json())

    # --- rita returns ann's reading; ann's queue shows it first and Start reading opens it
    ann_reading = next(
        a
        for a in rita.get(f"/images/{ids[0]}/annotations").json()
        if a["owner_id"] == study["ids_of"]["ann"].id
    )
    r = rita.post(
        f"/annotations/{ann_reading['id']}/review",
        json={
            "decision": "reject",
            "base_version": ann_reading["version"],
            "comments": [{"text": "too wide"}],
        },
    )
    assert r.status_code == 200, r.text
    queue = study["ann"].get(f"/projects/{pid}/queue").json()
    assert queue["items"][0]["reason"] == "returned"

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    annotator = context.new_page()
    errors: list[str] = []
    annotator.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        _login(annotator, live_server, "ann", f"#/projects/{pid}")
        card = annotator.locator("[data-testid=my-queue]")
        card.locator("[data-testid=queue-count]").wait_for()
        count = card.locator("[data-testid=queue-count]")
        assert count.get_attribute("data-owed") == str(len(queue["items"]))
        assert count.get_attribute("data-returned") == "1"
        items = card.locator("[data-testid=queue-item]")
        assert items.first.get_attribute("data-reason") == "returned"
        assert items.first.get_attribute("data-image-id") == str(ids[0])
        assert annotator.locator("[data-testid=tab-study]").count() == 0  # reviewers only
        shot(annotator, "study-my-queue")
        card.locator("[data-testid=start-reading]").click()
        annotator.wait_for_selector("[data-testid=workspace-stub]")
        assert annotator.url.endswith(f"#/images/{ids[0]}")
    finally:
        context.close()
    assert not errors, errors
