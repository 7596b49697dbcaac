"""AI and classical tools in the annotation workspace, in a real browser against a live
server: a box prompt to the AI model becomes a pending proposal drawn over the image,
clicks refine it, Esc rejects it, Enter / Accept merges it into the annotation as an
engine-sourced revision (painted where the mouse went), the threshold tool with Otsu's
suggestion, scribbles for the random walker, and slice-by-slice propagation on a CT."""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medlabel.annotation.schema import LabelSpec
from medlabel.security.roles import Role
from medlabel.services.imports import import_paths
from medlabel.services.projects import add_labels, create_project
from medlabel.services.users import create_user
from tests.browser.conftest import LiveServer, shot
from tests.browser.test_workspace import (
    READY,
    api,
    at,
    displayed_indices,
    drag,
    image_rect,
    login,
    open_image,
    saved_mask,
    slice_number,
    wait_saved,
)
from tests.conftest import PASSWORD, sample_file

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AI = "litemedsam"
LESION = (230, 25, 75)  # the "lesion" label's colour, #e6194b
# The head CT of the demo (CQ500, 512×512): a dark fluid-filled region lies in the
# upper right of the displayed slice (the patient's left, front). A box around it, as
# fractions of the displayed image: asymmetric, so a flipped mask would miss it.
HEAD_BOX = ((0.55, 0.26), (0.71, 0.56))


@dataclass
class Setup:
    url: str
    project_id: int
    head: int  # real 2D head CT slice, 512×512 (the demo's)
    ct: int  # real 5-slice CT (16×16 pixels)


@pytest.fixture
def setup(live_server: LiveServer, ct_series: Path, tmp_path: Path) -> Setup:
    ctx = live_server.ctx
    create_user(ctx, "rad", PASSWORD, Role.ADMIN)
    project = create_project(ctx, None, "AI tools")
    specs = [
        LabelSpec(name="lesion", kind="mask", color="#e6194b", value=1),
        LabelSpec(name="organ", kind="mask", color="#4363d8", value=2),
    ]
    add_labels(ctx, None, project.id, specs)
    head = Path(shutil.copy(sample_file("693_UNCR.dcm"), tmp_path / "693_UNCR.dcm"))
    ids = [import_paths(ctx, None, project.id, [p]).image_ids[0] for p in (head, ct_series)]
    return Setup(live_server.url, project.id, *ids)


# ---- helpers -------------------------------------------------------------------------------


def require_engine(page: Any, s: Setup, name: str) -> dict[str, Any]:
    """The engine's description; skips (locally) or fails (CI=true) when not installed."""
    engines = {e["name"]: e for e in api(page, s, "/engines")}
    engine = engines.get(name)
    if engine is None or not engine["available"]:
        why = (engine or {}).get("message") or f"the server has no engine {name!r}"
        reason = f"{name} is not available: {why} (pip install 'medlabel[ai]')"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return engine


def wait_status(page: Any, pattern: str, timeout: int = 90_000) -> str:
    """Wait until the AI status text matches the regular expression; return it."""
    try:
        page.wait_for_function(
            """(p) => {
                const el = document.querySelector('[data-testid=ai-status]');
                return el && new RegExp(p).test(el.textContent);
            }""",
            arg=pattern,
            timeout=timeout,
        )
    except Exception:
        text = page.get_by_test_id("ai-status").text_content()
        toasts = page.locator("[data-testid^=toast-]").all_inner_texts()
        raise AssertionError(
            f"AI status {text!r} never matched {pattern!r}; toasts {toasts}"
        ) from None
    return str(page.get_by_test_id("ai-status").text_content())


def pending_count(page: Any) -> int:
    return int(page.evaluate("() => window.__medlabelWorkspace.ai.proposals.count"))


def proposals(page: Any, s: Setup, image_id: int, state: str | None = None) -> list[dict[str, Any]]:
    query = f"?state={state}" if state else ""
    return list(api(page, s, f"/images/{image_id}/proposals{query}"))


def settled_pending(page: Any, s: Setup, image_id: int, n: int) -> list[dict[str, Any]]:
    """The pending proposals once the server has ``n`` of them: the UI rejects a replaced
    proposal in the background, so the server may lag the screen for a moment."""
    deadline = time.monotonic() + 15
    while True:
        pending = proposals(page, s, image_id, "pending")
        if len(pending) == n or time.monotonic() > deadline:
            return pending
        page.wait_for_timeout(200)


def overlay_colour(
    page: Any, box: tuple[float, float, float, float], rgb: tuple[int, int, int]
) -> tuple[int, int]:
    """Overlay pixels of a colour (a pending proposal) inside and outside a page
    rectangle (left, top, right, bottom in CSS px)."""
    return tuple(
        page.evaluate(
            """([box, rgb]) => {
                const ws = window.__medlabelWorkspace;
                const canvas = ws.r.overlay;
                const r = canvas.getBoundingClientRect();
                const sx = canvas.width / r.width, sy = canvas.height / r.height;
                const data = canvas.getContext("2d")
                    .getImageData(0, 0, canvas.width, canvas.height).data;
                let inside = 0, outside = 0;
                for (let y = 0; y < canvas.height; y++) {
                    for (let x = 0; x < canvas.width; x++) {
                        const o = 4 * (y * canvas.width + x);
                        if (data[o + 3] < 40) continue;
                        const near = Math.abs(data[o] - rgb[0]) + Math.abs(data[o + 1] - rgb[1])
                            + Math.abs(data[o + 2] - rgb[2]);
                        if (near > 60) continue;
                        const px = r.left + x / sx, py = r.top + y / sy;
                        if (px >= box[0] && px <= box[2] && py >= box[1] && py <= box[3]) inside++;
                        else outside++;
                    }
                }
                return [inside, outside];
            }""",
            [list(box), list(rgb)],
        )
    )


def expected_region(
    disp: np.ndarray,
    rect: tuple[float, float, float, float],
    a: tuple[int, int],
    b: tuple[int, int],
    margin: int,
) -> tuple[set[int], set[int]]:
    """Stored voxels shown inside the dragged box, and inside it grown by ``margin`` pixels."""
    h, w = disp.shape
    (fx0, fy0), (fx1, fy1) = (
        ((p[0] - rect[0]) / rect[2], (p[1] - rect[1]) / rect[3]) for p in (a, b)
    )
    cols = [j for j in range(w) if fx0 <= (j + 0.5) / w <= fx1]
    rows = [i for i in range(h) if fy0 <= (i + 0.5) / h <= fy1]
    inside = {int(disp[i, j]) for i in rows for j in cols}
    i0, i1 = max(rows[0] - margin, 0), min(rows[-1] + margin, h - 1)
    j0, j1 = max(cols[0] - margin, 0), min(cols[-1] + margin, w - 1)
    grown = {int(v) for v in disp[i0 : i1 + 1, j0 : j1 + 1].ravel()}
    return inside, grown


def drawn_voxels(page: Any) -> int:
    return int(
        page.evaluate(
            "() => window.__medlabelWorkspace.viewer.nv.drawBitmap"
            "?.reduce((n, v) => n + (v > 0), 0) ?? 0"
        )
    )


def ai_box(
    page: Any,
    rect: tuple[float, float, float, float],
    fa: tuple[float, float],
    fb: tuple[float, float],
) -> tuple[tuple[int, int], tuple[int, int]]:
    page.keyboard.press("Shift+A")
    assert page.get_by_test_id("tool-ai-box").get_attribute("aria-pressed") == "true"
    a, b = at(rect, *fa), at(rect, *fb)
    drag(page, a, b)
    return a, b


# ---- tests ---------------------------------------------------------------------------------


def test_ai_box_accept_lands_where_dragged(page: Any, setup: Setup) -> None:
    s = setup
    login(page, s)
    require_engine(page, s, AI)
    open_image(page, s, s.head)
    image = api(page, s, f"/images/{s.head}")
    rect = image_rect(page)
    disp = displayed_indices(image, "axial", 1)

    a, b = ai_box(page, rect, *HEAD_BOX)
    page.wait_for_function(
        "() => /AI running|loading model/"
        ".test(document.querySelector('[data-testid=ai-status]').textContent)"
        " || window.__medlabelWorkspace.ai.proposals.count > 0"
    )
    shot(page, "ai-box-running")
    status = wait_status(page, r"^proposal in \d+\.\d\d s \(engine \d+\.\d\d s\)$")
    shot(page, "ai-box-proposal")
    assert pending_count(page) == 1
    assert page.get_by_test_id("proposal-count").inner_text() == "1 pending"
    (pending,) = settled_pending(page, s, s.head, 1)
    assert pending["engine"] == AI and pending["label"] == "lesion" and pending["voxels"] > 50
    assert (pending["prompt"]["axis"], pending["prompt"]["index"]) == (0, 0)  # a 2D image
    # The overlay shows it in the label's colour, inside the box the mouse drew.
    inside, outside = overlay_colour(page, (a[0], a[1], b[0], b[1]), LESION)
    assert inside > 200 and outside < inside / 20, (inside, outside, status)
    assert drawn_voxels(page) == 0  # pending: not in the drawing yet

    page.get_by_test_id("accept-proposal").click()
    version = wait_saved(page)
    wait_status(page, r"^accepted 1 proposal")
    painted = drawn_voxels(page)
    assert painted == pending["voxels"]
    assert pending_count(page) == 0
    shot(page, "ai-box-accepted")

    # After a reload, the server's mask is the one on screen, where the mouse dragged.
    page.reload()
    page.wait_for_selector(READY, timeout=30_000)
    assert drawn_voxels(page) == painted
    (ann,) = api(page, s, f"/images/{s.head}/annotations")
    assert ann["version"] == version
    head = ann["head"]
    assert head["source"] == "engine" and head["engine_name"] == AI
    mask = saved_mask(page, s, head["id"]).reshape(-1)
    voxels = {int(i) for i in np.flatnonzero(mask == 1)}
    inside_box, near_box = expected_region(disp, rect, a, b, margin=3)
    assert len(voxels) == painted
    assert voxels <= near_box, f"{len(voxels - near_box)} voxels far outside the box"
    assert len(voxels & inside_box) > 0.9 * len(voxels)
    page.locator("[data-testid=revision-item]").first.wait_for()
    assert AI in page.locator("[data-testid=revision-item]").first.inner_text()
    shot(page, "ai-box-reloaded")


def test_ai_click_refines_and_esc_rejects(page: Any, setup: Setup) -> None:
    s = setup
    login(page, s)
    require_engine(page, s, AI)
    open_image(page, s, s.head)
    rect = image_rect(page)
    ai_box(page, rect, *HEAD_BOX)
    wait_status(page, r"^proposal in ")
    (first,) = settled_pending(page, s, s.head, 1)

    # A negative click (Shift) inside the box, a positive one (left) in its middle.
    page.keyboard.press("Shift+C")
    assert page.get_by_test_id("tool-ai-click").get_attribute("aria-pressed") == "true"
    page.keyboard.down("Shift")
    page.mouse.click(*at(rect, 0.57, 0.28))
    page.keyboard.up("Shift")
    page.wait_for_function(
        "(id) => window.__medlabelWorkspace.ai.proposals.pending.some((p) => p.id !== id)",
        arg=first["id"],
        timeout=90_000,
    )
    wait_status(page, r"^proposal in ")
    page.mouse.click(*at(rect, 0.63, 0.40), button="right")  # right click: also negative
    page.wait_for_function(
        "() => window.__medlabelWorkspace.ai.proposals.pending"
        ".some((p) => p.prompt.negative?.length === 2)",
        timeout=90_000,
    )
    wait_status(page, r"^proposal in ")
    shot(page, "ai-click-refined")
    assert pending_count(page) == 1
    (refined,) = settled_pending(page, s, s.head, 1)
    assert refined["id"] != first["id"]
    assert len(refined["prompt"]["negative"]) == 2 and refined["prompt"]["box"]
    assert "previous" in refined["prompt"]  # refines the pending proposal
    assert refined["voxels"] != first["voxels"]
    states = {p["id"]: p["state"] for p in proposals(page, s, s.head)}
    assert states[first["id"]] == "rejected"  # replaced on the same slice

    # Esc rejects: nothing pending, nothing drawn, no annotation.
    page.keyboard.press("Escape")
    wait_status(page, r"^rejected 1 proposal$")
    assert pending_count(page) == 0
    assert page.get_by_test_id("accept-proposal").is_hidden()
    inside, _ = overlay_colour(
        page, (rect[0], rect[1], rect[0] + rect[2], rect[1] + rect[3]), LESION
    )
    assert inside == 0
    assert not proposals(page, s, s.head, "pending")
    assert api(page, s, f"/images/{s.head}/annotations") == []
    shot(page, "ai-click-rejected")


def test_threshold_with_otsu_suggestion(page: Any, setup: Setup) -> None:
    s = setup
    login(page, s)
    open_image(page, s, s.head)
    # An unsaved human edit first (another label, in the air beside the head).
    rect = image_rect(page)
    page.keyboard.press("b")
    page.get_by_test_id("label-select").select_option("organ")
    drag(page, at(rect, 0.05, 0.05), at(rect, 0.2, 0.05))
    brushed = drawn_voxels(page)
    assert brushed > 0
    page.get_by_test_id("label-select").select_option("lesion")

    page.locator("[data-testid=classical-tools] > summary").click()
    panel = page.get_by_test_id("classical-tools")
    page.get_by_test_id("classical-engine").select_option("threshold")
    page.get_by_test_id("param-method").wait_for()
    assert page.get_by_test_id("param-low").input_value() == ""
    page.get_by_test_id("run-tool").click()
    wait_status(page, r"^proposal in ")
    suggestion = page.get_by_test_id("otsu-suggestion").inner_text()
    otsu = float(re.fullmatch(r"Otsu suggests (-?[\d.]+)", suggestion).group(1))
    shot(page, "threshold-otsu")
    page.get_by_test_id("use-otsu").click()
    assert float(page.get_by_test_id("param-low").input_value()) == pytest.approx(otsu)
    page.get_by_test_id("param-high").fill("100")
    page.get_by_test_id("run-tool").click()
    page.wait_for_function(
        "() => window.__medlabelWorkspace.ai.proposals.pending"
        ".some((p) => p.prompt.params?.high === 100)",
        timeout=30_000,
    )
    (pending,) = settled_pending(page, s, s.head, 1)
    assert pending["engine"] == "threshold"
    assert pending["prompt"]["params"]["low"] == pytest.approx(otsu, abs=0.05)
    assert pending["info"]["high"] == 100
    assert "Otsu suggests" in panel.inner_text()
    shot(page, "threshold-range")
    page.keyboard.press("Enter")  # accept: saves the brush stroke first, as a human revision
    status = wait_status(page, r"^accepted 1 proposal · version \d+$")
    version = wait_saved(page)
    assert status.endswith(f"version {version}")
    (ann,) = api(page, s, f"/images/{s.head}/annotations")
    assert ann["head"]["engine_name"] == "threshold"
    revisions = api(page, s, f"/annotations/{ann['id']}/revisions")
    assert [r["source"] for r in revisions] == ["engine", "human"]
    mask = saved_mask(page, s, ann["head"]["id"]).reshape(-1)
    assert int((mask == 2).sum()) == brushed
    assert int((mask == 1).sum()) == pending["voxels"]
    assert drawn_voxels(page) == brushed + pending["voxels"]
    page.get_by_test_id("revision-item").nth(1).wait_for()
    shot(page, "threshold-accepted")
    # One undo step takes the proposal out again (an unsaved change), redo puts it back.
    page.keyboard.press("Control+z")
    assert drawn_voxels(page) == brushed
    assert page.get_by_test_id("save-status").inner_text() != f"Saved · version {version}"
    page.keyboard.press("Control+Shift+z")
    assert drawn_voxels(page) == brushed + pending["voxels"]


def test_scribbles_for_the_random_walker(page: Any, setup: Setup) -> None:
    s = setup
    login(page, s)
    open_image(page, s, s.head)
    rect = image_rect(page)
    page.locator("[data-testid=classical-tools] > summary").click()
    page.get_by_test_id("classical-engine").select_option("random-walker")
    page.get_by_test_id("prompt-scribble").click()
    assert page.get_by_test_id("tool-scribble").get_attribute("aria-pressed") == "true"
    drag(page, at(rect, 0.60, 0.35), at(rect, 0.64, 0.45), steps=10)  # in the dark region
    page.keyboard.down("Shift")  # background: the brain beside it
    drag(page, at(rect, 0.45, 0.35), at(rect, 0.45, 0.60), steps=10)
    page.keyboard.up("Shift")
    prompts = page.evaluate("() => window.__medlabelWorkspace.ai.prompts")
    kinds = [st["kind"] for st in prompts["strokes"]]
    assert kinds == ["foreground", "background"]
    assert all(len(st["points"]) > 10 for st in prompts["strokes"])
    summary = page.get_by_test_id("prompt-summary").inner_text()
    assert summary == "Prompts: 1 foreground stroke, 1 background stroke."
    shot(page, "scribbles")
    page.get_by_test_id("run-tool").click()
    wait_status(page, r"^proposal in ", timeout=60_000)
    (pending,) = settled_pending(page, s, s.head, 1)
    assert pending["engine"] == "random-walker" and pending["voxels"] > 0
    shot(page, "scribbles-proposal")


def test_propagation_on_a_ct_volume(page: Any, setup: Setup) -> None:
    s = setup
    login(page, s)
    require_engine(page, s, AI)
    open_image(page, s, s.ct)
    image = api(page, s, f"/images/{s.ct}")
    rect = image_rect(page)
    k, n = slice_number(page)
    assert (k, n) == (3, 5)
    disp = displayed_indices(image, "axial", k)
    a, b = ai_box(page, rect, (0.2, 0.2), (0.8, 0.75))
    wait_status(page, r"^proposal in ")
    shot(page, "ct-ai-box")

    # Start, and stop (Esc) once the first neighbouring slice is proposed.
    page.get_by_test_id("tool-propagate").click()
    assert page.get_by_test_id("tool-propagate").get_attribute("aria-pressed") == "true"
    wait_status(page, r"^slice \d [↑↓], 0 done", timeout=30_000)
    page.wait_for_function(
        "() => window.__medlabelWorkspace.ai.proposals.count >= 2", timeout=60_000
    )
    page.keyboard.press("Escape")
    status = wait_status(page, r"^propagation stopped", timeout=60_000)
    first_run = pending_count(page)
    assert 2 <= first_run < 5, status
    stopped_at = slice_number(page)[0]
    assert stopped_at != 3  # it stays where it stopped, to correct that slice
    shot(page, "ct-propagation-stopped")

    # Correct this slice with an AI click: its proposal is replaced.
    before = page.evaluate(
        """() => {
            const ai = window.__medlabelWorkspace.ai;
            const here = ai.currentSlice();
            return ai.proposals.onSlice(here.axis, here.index)?.id ?? null;
        }"""
    )
    assert before is not None
    page.keyboard.press("Shift+C")
    page.mouse.click(*at(rect, 0.5, 0.5))
    page.wait_for_function(
        "(id) => !window.__medlabelWorkspace.ai.proposals.pending.some((p) => p.id === id)"
        " && !window.__medlabelWorkspace.ai.status.busy",
        arg=before,
        timeout=60_000,
    )
    assert pending_count(page) == first_run

    # Continue from here: slices done are kept, the missing ones are proposed.
    page.keyboard.press("Shift+P")
    status = wait_status(page, r"^propagation done", timeout=180_000)
    assert page.get_by_test_id("tool-propagate").get_attribute("aria-pressed") == "false"
    assert re.search(r", \d kept$", status), status
    asked = [
        p for p in proposals(page, s, s.ct) if (p["prompt"].get("params") or {}).get("propagate")
    ]
    assert len(asked) >= 2, status
    assert {p["prompt"]["index"] for p in asked} <= {0, 1, 3, 4}
    total = pending_count(page)
    assert total > first_run or "stop" in status
    shot(page, "ct-propagated")
    page.keyboard.press("ArrowDown")
    shot(page, "ct-propagated-slice-below")

    page.keyboard.press("Enter")
    wait_saved(page)
    wait_status(page, rf"^accepted {total} proposals")
    (ann,) = api(page, s, f"/images/{s.ct}/annotations")
    assert ann["head"]["engine_name"] == AI
    mask = saved_mask(page, s, ann["head"]["id"])
    planes = {int(p) for p in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(1))}
    assert len(planes) == total
    # The start slice's voxels are where the mouse dragged.
    inside_box, near_box = expected_region(disp, rect, a, b, margin=1)
    start_plane = int(np.unravel_index(next(iter(inside_box)), mask.shape)[0])
    flat = np.arange(mask.size).reshape(mask.shape)[start_plane].ravel()
    on_start = {int(i) for i in np.flatnonzero(mask.reshape(-1))} & {int(v) for v in flat}
    assert on_start and on_start <= near_box
    shot(page, "ct-propagation-accepted")


def test_shortcuts_and_help(page: Any, setup: Setup) -> None:
    s = setup
    login(page, s)
    open_image(page, s, s.ct)
    # Plain letters keep choosing views; with Shift they choose the AI tools.
    page.keyboard.press("c")
    page.wait_for_function("() => window.__medlabelWorkspace.viewer.view === 'coronal'")
    page.keyboard.press("a")
    page.wait_for_function("() => window.__medlabelWorkspace.viewer.view === 'axial'")
    for key, tool in (("Shift+A", "ai-box"), ("Shift+C", "ai-click"), ("Shift+S", "scribble")):
        page.keyboard.press(key)
        assert page.get_by_test_id(f"tool-{tool}").get_attribute("aria-pressed") == "true"
    assert page.evaluate("() => window.__medlabelWorkspace.viewer.view") == "axial"
    page.keyboard.press("Escape")  # nothing pending: back to the navigate tool
    assert page.get_by_test_id("tool-navigate").get_attribute("aria-pressed") == "true"
    page.keyboard.press("?")
    help_overlay = page.get_by_test_id("help-overlay")
    help_overlay.wait_for(state="visible")
    text = help_overlay.inner_text()
    for words in ("Shift+A", "AI box", "AI click", "Scribble", "Shift+P", "Accept the AI"):
        assert words in text
    shot(page, "ai-help")
    page.keyboard.press("Escape")
    help_overlay.wait_for(state="hidden")
    # Propagation needs a mask on the slice first: it says so instead of running.
    page.get_by_test_id("tool-propagate").click()
    page.get_by_test_id("toast-info").filter(has_text="propagation continues").wait_for()
    assert page.get_by_test_id("tool-propagate").get_attribute("aria-pressed") == "false"
