"""A reader study on the demo project, through the UI: two annotators read the same image
(blinded: neither sees the other's work), a reviewer rejects one reading with a comment
pinned to the image, its author sees the pin, fixes the reading and resubmits, the
reviewer approves both, opens the image from the agreement dashboard, builds the
consensus, sees where the readers disagree and how well they agree, adjudicates and
approves the consensus, which becomes the image's reference."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from medlabel.services.demo import setup_demo
from tests.browser.conftest import LiveServer, _console, shot
from tests.browser.test_workspace import READY, at, image_rect, wait_saved
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT = 60_000  # ms: a loaded 2-core machine draws with software WebGL
OPEN_TIMEOUT = 120_000  # ms: opening the workspace (NiiVue, the volume) on such a machine
PIN_RGB = (255, 176, 0)  # an open comment's pin (review_overlay.js)
DISAGREEMENT_RGB = (255, 43, 214)  # the disagreement overlay's colour
# Two readers outline the same region, the second shifted right and down (fractions of
# the displayed image); the first reader's first try stops short at the bottom.
READER_1 = [(0.36, 0.36), (0.58, 0.36), (0.58, 0.5), (0.36, 0.5), (0.36, 0.37)]
READER_1_FIX = [(0.36, 0.48), (0.58, 0.48), (0.58, 0.6), (0.36, 0.6), (0.36, 0.49)]
READER_2 = [(0.42, 0.4), (0.64, 0.4), (0.64, 0.64), (0.42, 0.64), (0.42, 0.41)]
PIN_AT = (0.47, 0.55)  # where the reviewer pins "extend it down to here"


@dataclass
class Study:
    url: str
    project_id: int
    admin: httpx.Client  # logged in as the demo administrator


@pytest.fixture
def study(live_server: LiveServer) -> Iterator[Study]:
    """The demo project (real images), two annotators and a reviewer as its members, two
    blinded readers per image — all set up through the API as the administrator."""
    info = setup_demo(live_server.ctx)
    client = httpx.Client(base_url=live_server.url, timeout=60)
    r = client.post("/api/auth/login", json={"username": info.username, "password": info.password})
    assert r.status_code == 200, r.text
    (project,) = [p for p in client.get("/api/projects").json() if p["name"] == info.project]
    pid = project["id"]
    for name, role in (("ann1", "annotator"), ("ann2", "annotator"), ("rita", "reviewer")):
        r = client.post("/api/users", json={"username": name, "password": PASSWORD, "role": role})
        assert r.status_code == 201, r.text
        r = client.put(f"/api/projects/{pid}/members/{r.json()['id']}", json={"role": role})
        assert r.status_code == 200, r.text
    r = client.patch(f"/api/projects/{pid}", json={"readers_per_image": 2, "blinded": True})
    assert r.status_code == 200 and r.json()["blinded"], r.text
    yield Study(live_server.url, pid, client)
    client.close()


# ---- helpers -------------------------------------------------------------------------------


@contextmanager
def user_page(browser: Any, s: Study, username: str, hash_: str) -> Iterator[Any]:
    """A browser session of its own, signed in through the login page, which then shows
    ``hash_``; JavaScript errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: _console(msg, errors))
    try:
        page.goto(f"{s.url}/{hash_}")
        page.fill("[data-testid=login-username]", username)
        page.fill("[data-testid=login-password]", PASSWORD)
        page.click("[data-testid=login-submit]")
        page.wait_for_function("(h) => location.hash === h", arg=hash_)
        yield page
    finally:
        context.close()
    assert not errors, f"browser errors of {username}: {errors}"


def wait_ready(page: Any) -> int:
    """Wait for the workspace and its review panels; the image id it shows."""
    try:
        page.wait_for_selector(f"{READY}[data-review=ready]", timeout=OPEN_TIMEOUT)
    except Exception:
        shot(page, "review-not-ready")
        state = page.evaluate(
            "() => ({...(document.querySelector('[data-testid=workspace]')?.dataset || {})})"
        )
        toasts = page.locator("[data-testid^=toast-]").all_inner_texts()
        raise AssertionError(f"workspace not ready at {page.url}: {state}, {toasts}") from None
    match = re.search(r"#/images/(\d+)", page.url)
    assert match, page.url
    return int(match.group(1))


def wait_js(page: Any, expression: str, arg: Any = None) -> None:
    page.wait_for_function(expression, arg=arg, timeout=TIMEOUT)


def wait_state(page: Any, state: str) -> None:
    wait_js(
        page,
        "(s) => document.querySelector('[data-testid=annotation-state]').dataset.state === s",
        state,
    )


def lasso(page: Any, corners: list[tuple[float, float]]) -> None:
    """Outline a region with the lasso tool (filled on release) in the active label."""
    page.get_by_test_id("tool-polygon").click()
    rect = image_rect(page)
    page.mouse.move(*at(rect, *corners[0]))
    page.mouse.down()
    for c in corners[1:]:
        page.mouse.move(*at(rect, *c), steps=8)
    page.mouse.up()


def overlay_pixels(
    page: Any, rgb: tuple[int, int, int], around: tuple[float, float] | None = None
) -> int:
    """Pixels of a colour on the review overlay (within 40 CSS px of a point given as a
    fraction of the image, or anywhere)."""
    return int(
        page.evaluate(
            """([rgb, around]) => {
                const ws = window.__medlabelWorkspace;
                const canvas = ws.review.overlay.canvas;
                ws.review.overlay.draw();
                const ctx = canvas.getContext("2d");
                const dpr = canvas.width / canvas.getBoundingClientRect().width;
                let [x0, y0, w, h] = [0, 0, canvas.width, canvas.height];
                if (around) {
                    const r = ws.viewer.imageRect("axial");
                    const cx = (r[0] + around[0] * r[2]) * dpr;
                    const cy = (r[1] + around[1] * r[3]) * dpr;
                    const d = 40 * dpr;
                    [x0, y0, w, h] = [cx - d, cy - d, 2 * d, 2 * d].map(Math.round);
                }
                const px = ctx.getImageData(x0, y0, w, h).data;
                let n = 0;
                for (let i = 0; i < px.length; i += 4) {
                    const near = [0, 1, 2].every((k) => Math.abs(px[i + k] - rgb[k]) < 40);
                    if (near && px[i + 3] > 200) n++;
                }
                return n;
            }""",
            [list(rgb), list(around) if around else None],
        )
    )


def read_image(page: Any, corners: list[tuple[float, float]], name: str) -> int:
    """In the workspace: outline the region, save, submit; the image id."""
    image_id = wait_ready(page)
    lasso(page, corners)
    page.get_by_test_id("save-annotation").click()
    wait_saved(page)
    shot(page, f"review-{name}-drawn")
    page.get_by_test_id("submit-annotation").click()
    wait_state(page, "submitted")
    return image_id


def api_json(page: Any, s: Study, path: str) -> Any:
    r = page.request.get(f"{s.url}/api{path}")
    assert r.ok, (path, r.status, r.text())
    return r.json()


def open_review_item(page: Any, reader: str) -> None:
    page.locator(f"[data-testid=review-item][data-reader={reader}]").click()
    wait_js(
        page,
        "(who) => document.querySelector('[data-testid=review-viewing]').textContent"
        ".startsWith(`${who}'s reading`)",
        reader,
    )


# ---- the study -----------------------------------------------------------------------------


def test_two_readers_and_a_reviewer_run_a_reader_study(browser: Any, study: Study) -> None:
    s = study
    project = f"#/projects/{s.project_id}"

    # Annotator 1 takes the first image from their queue and reads it.
    with user_page(browser, s, "ann1", project) as page:
        page.get_by_test_id("start-reading").click()
        image_id = read_image(page, READER_1, "ann1")
        assert page.get_by_test_id("review-panel").count() == 0  # not a reviewer
        (ann1,) = api_json(page, s, f"/images/{image_id}/annotations")
        shot(page, "review-ann1-submitted")

    # Annotator 2 gets the same image (two readers per image) and cannot see the first
    # reading anywhere: blinded.
    with user_page(browser, s, "ann2", project) as page:
        page.get_by_test_id("start-reading").click()
        assert wait_ready(page) == image_id
        assert page.evaluate("() => window.__medlabelWorkspace.viewer.hasDrawing()") is False
        assert page.get_by_test_id("reader-select").count() == 0
        assert page.request.get(f"{s.url}/api/annotations/{ann1['id']}").status == 404
        assert page.request.get(f"{s.url}/api/images/{image_id}/agreement").status == 403
        read_image(page, READER_2, "ann2")
        (ann2,) = api_json(page, s, f"/images/{image_id}/annotations")
        assert ann2["owner"] == "ann2"
        # "Next" takes the next image from the queue (claiming one that needs readers).
        page.get_by_test_id("next-image").click()
        page.wait_for_url(re.compile(rf"#/images/(?!{image_id}$)\d+$"), timeout=TIMEOUT)
        next_id = wait_ready(page)
        queue = api_json(page, s, f"/projects/{s.project_id}/queue")["items"]
        assert [i["image"]["id"] for i in queue] == [next_id]

    # The reviewer opens the image: both readings wait in the review queue. They reject
    # the first with a comment pinned where the outline should reach.
    with user_page(browser, s, "rita", project) as page:
        page.get_by_test_id("tab-images").click()
        page.locator(f"[data-testid=image-row][data-image-id='{image_id}']").first.click()
        wait_ready(page)
        wait_js(page, "() => document.querySelectorAll('[data-testid=review-item]').length === 2")
        readers = page.locator("[data-testid=review-item]").evaluate_all(
            "items => items.map((i) => i.dataset.reader)"
        )
        assert readers == ["ann1", "ann2"]  # oldest submission first
        open_review_item(page, "ann2")
        assert page.evaluate("() => window.__medlabelWorkspace.viewer.hasDrawing()")
        open_review_item(page, "ann1")
        options = page.get_by_test_id("reader-select").locator("option").all_inner_texts()
        assert any(o.startswith("ann2") for o in options), options
        page.get_by_test_id("review-comment").fill("Extend the outline down to the pin.")
        page.get_by_test_id("comment-pin").click()
        page.mouse.click(*at(image_rect(page), *PIN_AT))
        wait_js(
            page,
            "() => document.querySelector('[data-testid=comment-location]').textContent"
            ".startsWith('Pinned at')",
        )
        shot(page, "review-reviewer-pinned")
        page.get_by_test_id("reject").click()
        wait_state(page, "rejected")
        page.locator("[data-testid=comment-item][data-kind=reject][data-pinned=true]").wait_for()
        assert overlay_pixels(page, PIN_RGB, PIN_AT) > 20  # the numbered pin, where clicked
        shot(page, "review-reviewer-rejected")

    # The author finds the returned reading first in their queue, with the pinned
    # comment; they fix the outline, resolve the comment and resubmit.
    with user_page(browser, s, "ann1", project) as page:
        page.locator("[data-testid=queue-item][data-reason=returned]").wait_for()
        page.get_by_test_id("start-reading").click()
        assert wait_ready(page) == image_id
        wait_state(page, "rejected")
        panel = page.get_by_test_id("comments-panel")
        comment = panel.locator("[data-testid=comment-item][data-pinned=true]")
        comment.wait_for()
        assert panel.get_attribute("open") is not None
        assert "Extend the outline down to the pin." in comment.inner_text()
        comment.locator(".ws-item-text").click()  # goes to the pin
        assert overlay_pixels(page, PIN_RGB, PIN_AT) > 20
        shot(page, "review-author-comments")
        lasso(page, READER_1_FIX)
        page.get_by_test_id("save-annotation").click()
        wait_saved(page)
        comment.get_by_test_id("comment-resolve").click()
        panel.locator("[data-testid=comment-item][data-resolved=true]").wait_for()
        page.get_by_test_id("submit-annotation").click()
        wait_state(page, "submitted")
        shot(page, "review-author-resubmitted")

    # The reviewer approves both readings, then adjudicates from the agreement dashboard.
    with user_page(browser, s, "rita", f"#/images/{image_id}") as page:
        wait_ready(page)
        wait_js(page, "() => document.querySelectorAll('[data-testid=review-item]').length === 2")
        for reader in ("ann1", "ann2"):
            open_review_item(page, reader)
            page.get_by_test_id("approve").click()
            wait_state(page, "approved")
        wait_js(page, "() => !document.querySelector('[data-testid=review-item]')")

        page.goto(f"{s.url}/{project}")
        page.get_by_test_id("tab-agreement").click()
        page.get_by_test_id("agreement-dashboard").wait_for()
        shot(page, "review-agreement-dashboard")
        page.locator("[data-testid=adjudicate]").first.click()
        assert wait_ready(page) == image_id

        consensus_panel = page.get_by_test_id("consensus-panel")
        if consensus_panel.get_attribute("open") is None:
            consensus_panel.locator("summary").click()
        page.get_by_test_id("consensus-method").select_option("staple")
        page.get_by_test_id("consensus-build").click()
        wait_js(
            page,
            "() => document.querySelector('[data-testid=review-viewing]').textContent"
            ".startsWith('The consensus')",
        )
        toggle = page.get_by_test_id("disagreement-toggle")
        wait_js(
            page,
            "() => document.querySelector('[data-testid=disagreement-toggle]')"
            ".getAttribute('aria-pressed') === 'true'",
        )
        row = page.locator(
            "[data-testid=agreement-row][data-label=lesion][data-readers='ann1|ann2']"
        )
        row.wait_for()
        dice = float(row.locator("td").nth(2).inner_text())
        assert 0.2 < dice < 0.95, dice  # overlapping, not identical outlines
        assert overlay_pixels(page, DISAGREEMENT_RGB) > 500
        consensus_panel.scroll_into_view_if_needed()
        shot(page, "review-consensus-disagreement")
        toggle.click()
        wait_js(
            page,
            "() => document.querySelector('[data-testid=disagreement-toggle]')"
            ".getAttribute('aria-pressed') === 'false'",
        )
        assert overlay_pixels(page, DISAGREEMENT_RGB) == 0
        toggle.click()

        # Adjudicate: the reviewer adds the disputed lower right part, saves (a human
        # revision on top of the computed one) and approves the consensus.
        lasso(page, [(0.55, 0.55), (0.64, 0.55), (0.64, 0.64), (0.55, 0.64), (0.55, 0.56)])
        page.get_by_test_id("save-annotation").click()
        wait_saved(page)
        page.get_by_test_id("approve").click()
        wait_state(page, "approved")
        wait_js(  # the agreement table compares the readers with the adjudicated consensus
            page,
            """() => document.querySelector('[data-testid=agreement-table]').dataset
                .consensusRevision === String(
                    window.__medlabelWorkspace.persistence.annotation.head_revision_id)""",
        )
        shot(page, "review-consensus-approved")

    # Through the API: the adjudicated consensus is the image's reference.
    annotations = s.admin.get(f"/api/images/{image_id}/annotations").json()
    (consensus,) = [a for a in annotations if a["kind"] == "consensus"]
    assert consensus["owner_id"] is None and consensus["state"] == "approved"
    revisions = s.admin.get(f"/api/annotations/{consensus['id']}/revisions").json()
    head, computed = revisions[0], revisions[1]
    assert head["id"] == consensus["head_revision_id"] == consensus["approved_revision_id"]
    assert head["source"] == "human" and head["parent_id"] == computed["id"]
    assert computed["engine_name"].startswith("consensus.")
    assert {i["reader"] for i in computed["prompt"]["inputs"]} == {"ann1", "ann2"}
    ref = s.admin.get(f"/api/images/{image_id}/reference").json()
    assert ref["source"] == "consensus" and ref["annotation_ids"] == [consensus["id"]]
    assert ref["revisions"][0]["id"] == head["id"]
    # the adjudicated mask holds more than the computed one (the added part)
    readers = {a["owner"]: a for a in annotations if a["kind"] == "reader"}
    assert {a["state"] for a in readers.values()} == {"approved"}
    masks = [
        _mask(s, rev_id) for rev_id in (computed["id"], head["id"], readers["ann2"]["head"]["id"])
    ]
    assert masks[1].sum() > masks[0].sum() and (masks[1] >= masks[0]).all()


def _mask(s: Study, revision_id: int) -> np.ndarray:
    """A revision's mask (True where labelled), read through the API as the admin."""
    r = s.admin.get(f"/api/revisions/{revision_id}/mask")
    assert r.status_code == 200, r.text
    shape = tuple(int(x) for x in r.headers["x-mask-shape"].split(","))
    dtype = np.uint16 if r.headers["x-mask-dtype"] == "uint16" else np.uint8
    labels: np.ndarray = np.frombuffer(gzip.decompress(r.content), dtype=dtype).reshape(shape)
    return np.asarray(labels > 0)
