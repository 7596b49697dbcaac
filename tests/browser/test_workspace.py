"""The annotation workspace in a real browser: viewing real DICOM images, annotating with
every tool, saving, reloading, and checking through the API that what was painted lies
where the mouse went (in the stored image's voxel order, radiological display)."""

from __future__ import annotations

import gzip
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medlabel.annotation.schema import LabelSpec
from medlabel.imaging.orientation import View, display_slice, patient_axes, view_axis
from medlabel.security.roles import Role
from medlabel.services.imports import import_paths
from medlabel.services.projects import add_labels, create_project
from medlabel.services.users import create_user
from tests.browser.conftest import LiveServer, shot
from tests.conftest import PASSWORD, sample_file

pytestmark = [pytest.mark.browser, pytest.mark.slow]

READY = "[data-testid=workspace][data-state=ready]"


@dataclass
class Setup:
    url: str
    project_id: int
    ct: int  # real 5-slice CT (16×16 pixels)
    us: int  # real RGB ultrasound (480×640, 2D)
    mr: int  # real 10-frame MR (64×64)


@pytest.fixture
def setup(live_server: LiveServer, ct_series: Path, tmp_path: Path) -> Setup:
    ctx = live_server.ctx
    create_user(ctx, "rad", PASSWORD, Role.ADMIN)
    project = create_project(ctx, None, "Workspace")
    specs = [
        LabelSpec(name="lesion", kind="mask", color="#e6194b", value=1),
        LabelSpec(name="organ", kind="mask", color="#4363d8", value=2),
        LabelSpec(name="finding", kind="box", color="#ffe119"),
        LabelSpec(name="landmark", kind="point", color="#46f0f0"),
        LabelSpec(name="normal", kind="classification", color="#3cb44b"),
        LabelSpec(name="abnormal", kind="classification", color="#f58231"),
        LabelSpec(name="comment", kind="note", color="#808080"),
    ]
    add_labels(ctx, None, project.id, specs)
    ids = []
    for source in (ct_series, sample_file("US1_UNCR.dcm"), sample_file("emri_small.dcm")):
        target = source if source.is_dir() else Path(shutil.copy(source, tmp_path / source.name))
        (image_id,) = import_paths(ctx, None, project.id, [target]).image_ids
        ids.append(image_id)
    return Setup(live_server.url, project.id, *ids)


# ---- helpers -------------------------------------------------------------------------------


def login(page: Any, s: Setup) -> None:
    r = page.request.post(f"{s.url}/api/auth/login", data={"username": "rad", "password": PASSWORD})
    assert r.ok, r.text()


def open_image(page: Any, s: Setup, image_id: int) -> None:
    page.goto(f"{s.url}/#/images/{image_id}")
    page.wait_for_selector(READY, timeout=30_000)


def api(page: Any, s: Setup, path: str) -> Any:
    r = page.request.get(f"{s.url}/api{path}")
    assert r.ok, (path, r.status, r.text())
    return r.json()


def image_rect(page: Any, view: str = "axial") -> tuple[float, float, float, float]:
    """Where the image lies on the page in a view: left, top, width, height (CSS px)."""
    rect = page.evaluate(
        """(view) => {
            const ws = window.__medlabelWorkspace;
            const r = ws.viewer.imageRect(view);
            const c = ws.r.canvas.getBoundingClientRect();
            return [c.left + r[0], c.top + r[1], r[2], r[3]];
        }""",
        view,
    )
    return tuple(rect)


Rect = tuple[float, float, float, float]


def at(rect: Rect, fx: float, fy: float) -> tuple[int, int]:
    """The page pixel at a fraction of the image (mouse events land on whole pixels)."""
    return round(rect[0] + fx * rect[2]), round(rect[1] + fy * rect[3])


def frac(rect: Rect, xy: tuple[int, int]) -> tuple[float, float]:
    """Where a page pixel lies in the image, as fractions of its width and height."""
    return (xy[0] - rect[0]) / rect[2], (xy[1] - rect[1]) / rect[3]


def cell(rect: Rect, xy: tuple[int, int], shape: tuple[int, ...]) -> tuple[int, int]:
    """The displayed pixel (row, column) under a page pixel."""
    fx, fy = frac(rect, xy)
    return int(fy * shape[0]), int(fx * shape[1])


def drag(page: Any, a: tuple[float, float], b: tuple[float, float], steps: int = 12) -> None:
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=steps)
    page.mouse.up()


def slice_number(page: Any) -> tuple[int, int]:
    text = page.get_by_test_id("slice-text").inner_text()
    k, n = (int(x) for x in re.findall(r"\d+", text))
    return k, n


def displayed_indices(image: dict[str, Any], view: str, k: int) -> np.ndarray:
    """The flat voxel index shown at each screen pixel of slice ``k`` (1-based, as the
    status bar counts: along the view's RAS axis) — using the server's own orientation
    rules (radiological convention), independently of the browser viewer."""
    shape = tuple(image["shape"])
    affine = np.asarray(image["affine"])
    axis = view_axis(affine, view)
    pa = patient_axes(affine)[axis]
    ras_sign = (-1, -1, 1)[pa]  # RAS index runs towards R, A, S
    n = shape[axis]
    plane = k - 1 if np.sign(affine[pa, axis]) * ras_sign > 0 else n - k
    img, _ = display_slice(np.arange(np.prod(shape)).reshape(shape), affine, View(view), plane)
    return img


def saved_mask(page: Any, s: Setup, revision_id: int) -> np.ndarray:
    r = page.request.get(f"{s.url}/api/revisions/{revision_id}/mask")
    assert r.status == 200, r.text()
    shape = tuple(int(x) for x in r.headers["x-mask-shape"].split(","))
    dtype = np.uint16 if r.headers["x-mask-dtype"] == "uint16" else np.uint8
    return np.frombuffer(gzip.decompress(r.body()), dtype=dtype).reshape(shape)


def box_voxels(box: dict[str, Any], shape: tuple[int, ...]) -> set[int]:
    ranges = [
        range(int(np.ceil(box["start"][i])), int(np.floor(box["end"][i])) + 1) for i in range(3)
    ]
    return {
        int(np.ravel_multi_index((p, r, c), shape))
        for p in ranges[0]
        for r in ranges[1]
        for c in ranges[2]
    }


def my_annotation(page: Any, s: Setup, image_id: int) -> dict[str, Any]:
    (ann,) = api(page, s, f"/images/{image_id}/annotations")
    return ann


def wait_text(
    page: Any, testid: str, text: str, how: str = "equals", timeout: int = 30_000
) -> None:
    """Wait until the element's text equals / contains / startswith ``text``."""
    page.wait_for_function(
        """([id, how, text]) => {
            const el = document.querySelector(`[data-testid="${id}"]`);
            const t = el ? el.textContent : "";
            return how === "equals" ? t === text : how === "contains" ? t.includes(text)
                : how === "startswith" ? t.startsWith(text) : !t.startsWith(text);
        }""",
        arg=[testid, how, text],
        timeout=timeout,
    )


def wait_count(page: Any, testid: str, n: int, timeout: int = 20_000) -> None:
    page.wait_for_function(
        '([id, n]) => document.querySelectorAll(`[data-testid="${id}"]`).length === n',
        arg=[testid, n],
        timeout=timeout,
    )


def pressed(page: Any, testid: str, label: str) -> bool:
    tag = page.locator(f"[data-testid={testid}][data-label={label}]")
    return tag.get_attribute("aria-pressed") == "true"


def wait_saved(page: Any, previous: int | None = None) -> int:
    """Wait until the status bar says saved (at a version newer than ``previous``)."""
    try:
        page.wait_for_function(
            """(prev) => {
                const m = document.querySelector('[data-testid=save-status]').textContent
                    .match(/^Saved · version (\\d+)$/);
                return m && (prev === null || Number(m[1]) > prev);
            }""",
            arg=previous,
            timeout=20_000,
        )
    except Exception:
        status = page.get_by_test_id("save-status").inner_text()
        toasts = page.locator("[data-testid^=toast-]").all_inner_texts()
        raise AssertionError(f"not saved: status {status!r}, toasts {toasts}") from None
    return int(page.get_by_test_id("save-status").inner_text().rsplit(" ", 1)[1])


# ---- tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("single_slice", [False, True], ids=["3d", "single-slice"])
def test_ct_volume_annotate_save_reload(page: Any, setup: Setup, single_slice: bool) -> None:
    s = setup
    if single_slice:  # the fast mode large volumes open in without a GPU
        page.add_init_script("localStorage.setItem('medlabel.lightVoxels', '1')")
    login(page, s)
    open_image(page, s, s.ct)
    image = api(page, s, f"/images/{s.ct}")
    assert page.evaluate("() => window.__medlabelWorkspace.viewer.light") == single_slice
    mode = "-single-slice" if single_slice else ""
    shot(page, f"workspace-ct-open{mode}")
    assert slice_number(page) == (3, 5)

    # Slice navigation: wheel, keyboard and slider.
    rect = image_rect(page)
    page.mouse.move(*at(rect, 0.5, 0.5))
    page.mouse.wheel(0, -100)
    wait_text(page, "slice-text", "3 /", "not-startswith")
    after_wheel = slice_number(page)[0]
    assert after_wheel in (2, 4)
    page.keyboard.press("Home")
    wait_text(page, "slice-text", "1 / 5")
    page.keyboard.press("ArrowUp")
    wait_text(page, "slice-text", "2 / 5")
    page.get_by_test_id("slice-slider").fill("3")
    wait_text(page, "slice-text", "4 / 5")
    assert page.get_by_test_id("slice-slider").input_value() == "3"
    shot(page, f"workspace-ct-scrolled{mode}")

    # Window presets (from /api/meta) change the window.
    page.get_by_test_id("window-preset").select_option("lung")
    wait_text(page, "window-text", "W 1500 · L -600", "contains")
    page.get_by_test_id("window-preset").select_option("brain")
    wait_text(page, "window-text", "W 80 · L 40", "contains")
    shot(page, f"workspace-ct-brain-window{mode}")

    # Brush stroke (size 1) along one screen row of the displayed slice.
    k = slice_number(page)[0]
    disp = displayed_indices(image, "axial", k)
    h, w = disp.shape
    page.get_by_test_id("tool-brush").click()
    page.get_by_test_id("label-select").select_option("lesion")
    page.keyboard.press("[")
    page.keyboard.press("[")
    a, b = at(rect, 3.5 / w, 5.5 / h), at(rect, 11.5 / w, 5.5 / h)
    drag(page, a, b)
    (row, c0), (_, c1) = cell(rect, a, disp.shape), cell(rect, b, disp.shape)
    assert (row, c0, c1) == (5, 3, 11)
    expected_stroke = {int(v) for v in disp[row, c0 : c1 + 1]}
    shot(page, f"workspace-ct-brush{mode}")

    # Bounding box.
    page.get_by_test_id("tool-box").click()
    assert page.get_by_test_id("label-select").input_value() == "finding"
    a, b = at(rect, 2.2 / w, 9.2 / h), at(rect, 7.8 / w, 13.8 / h)
    drag(page, a, b)
    box_a, box_b = frac(rect, a), frac(rect, b)
    centres_j = [j for j in range(w) if box_a[0] <= (j + 0.5) / w <= box_b[0]]
    centres_i = [i for i in range(h) if box_a[1] <= (i + 0.5) / h <= box_b[1]]
    expected_box = {int(disp[i, j]) for i in centres_i for j in centres_j}
    assert page.get_by_test_id("box-item").count() == 1

    # Undo / redo work for boxes too.
    page.get_by_test_id("undo").click()
    assert page.get_by_test_id("box-item").count() == 0
    page.get_by_test_id("redo").click()
    assert page.get_by_test_id("box-item").count() == 1

    # Point, class tag and a note.
    page.get_by_test_id("tool-point").click()
    point_at = at(rect, 12.5 / w, 3.5 / h)
    page.mouse.click(*point_at)
    assert page.get_by_test_id("point-item").count() == 1
    page.locator("[data-testid=class-tag][data-label=abnormal]").click()
    page.get_by_test_id("note-input").fill("Hypodense focus, compare with prior")
    page.get_by_test_id("add-note").click()
    shot(page, f"workspace-ct-annotated{mode}")

    page.get_by_test_id("save-annotation").click()
    wait_saved(page)
    shot(page, f"workspace-ct-saved{mode}")

    # Reload: everything comes back.
    page.reload()
    page.wait_for_selector(READY, timeout=30_000)
    assert pressed(page, "class-tag", "abnormal")
    assert (
        page.get_by_test_id("note-item").inner_text().strip()
        == "Hypodense focus, compare with prior"
    )
    assert page.get_by_test_id("box-item").count() == 1
    assert page.get_by_test_id("point-item").count() == 1
    wait_count(page, "revision-item", 1)
    assert page.evaluate("() => window.__medlabelWorkspace.viewer.hasDrawing()")
    shot(page, f"workspace-ct-reloaded{mode}")

    # Through the API: painted voxels and boxes lie where the mouse went.
    ann = my_annotation(page, s, s.ct)
    head = ann["head"]
    mask = saved_mask(page, s, head["id"])
    shape = tuple(image["shape"])
    assert mask.shape == shape
    painted = {int(i) for i in np.flatnonzero(mask)}
    assert painted == expected_stroke
    assert set(np.unique(mask)) == {0, 1}
    (box,) = head["content"]["boxes"]
    assert box["label"] == "finding"
    assert box_voxels(box, shape) == expected_box
    (point,) = head["content"]["points"]
    rounded = tuple(round(v) for v in point["position"])
    assert int(np.ravel_multi_index(rounded, shape)) == int(disp[cell(rect, point_at, disp.shape)])
    assert head["content"]["classes"] == ["abnormal"]
    assert head["content"]["notes"][0]["text"] == "Hypodense focus, compare with prior"


def test_2d_rgb_ultrasound(page: Any, setup: Setup) -> None:
    s = setup
    login(page, s)
    open_image(page, s, s.us)
    image = api(page, s, f"/images/{s.us}")
    assert image["shape"][0] == 1 and image["channels"] == 3
    assert page.get_by_test_id("slice-slider").is_disabled()
    assert page.get_by_test_id("view-coronal").is_disabled()
    assert page.get_by_test_id("window-preset").is_disabled()  # colour: no windowing
    assert page.get_by_text("Patient orientation unknown").is_visible()
    shot(page, "workspace-us-open")

    rect = image_rect(page)
    disp = displayed_indices(image, "axial", 1)
    h, w = disp.shape
    page.keyboard.press("b")
    page.get_by_test_id("label-select").select_option("organ")
    for _ in range(2):
        page.keyboard.press("[")
    a, b = at(rect, 100.5 / w, 200.5 / h), at(rect, 400.5 / w, 200.5 / h)
    drag(page, a, b, 40)
    (row, c0), (_, c1) = cell(rect, a, disp.shape), cell(rect, b, disp.shape)
    page.keyboard.press("r")
    drag(page, at(rect, 0.55, 0.55), at(rect, 0.8, 0.85))
    page.locator("[data-testid=class-tag][data-label=normal]").click()
    shot(page, "workspace-us-annotated")
    page.keyboard.press("Control+s")
    wait_saved(page)

    head = my_annotation(page, s, s.us)["head"]
    mask = saved_mask(page, s, head["id"])
    painted = {int(i) for i in np.flatnonzero(mask)}
    assert painted == {int(v) for v in disp[row, c0 : c1 + 1]}
    assert set(np.unique(mask)) == {0, 2}  # the organ label's value
    (box,) = head["content"]["boxes"]
    assert box["start"][0] == -0.5 and box["end"][0] == 0.5  # one plane
    # columns follow the screen's x, rows its y (2D image shown as stored)
    assert box["start"][2] == pytest.approx(0.55 * w - 0.5, abs=1)
    assert box["end"][1] == pytest.approx(0.85 * h - 0.5, abs=1)
    assert head["content"]["classes"] == ["normal"]


def test_multiframe_mr_views_and_shortcuts(page: Any, setup: Setup) -> None:
    s = setup
    login(page, s)
    open_image(page, s, s.mr)
    assert slice_number(page)[1] == 10
    page.keyboard.press("End")
    wait_text(page, "slice-text", "10 / 10")
    page.keyboard.press("PageDown")
    wait_text(page, "slice-text", "5 / 10")
    # Multiplanar layout: three 2D tiles.
    page.keyboard.press("x")
    assert page.get_by_test_id("view-multiplanar").get_attribute("class").endswith("ws-on")
    tiles = page.evaluate("() => window.__medlabelWorkspace.viewer.tiles().map((t) => t.axCorSag)")
    assert sorted(tiles) == [0, 1, 2]
    shot(page, "workspace-mr-multiplanar")
    page.keyboard.press("c")
    assert page.evaluate(
        "() => window.__medlabelWorkspace.viewer.tiles().map((t) => t.axCorSag)"
    ) == [1]
    page.keyboard.press("a")
    # Shortcuts pick tools; the help overlay lists them.
    page.keyboard.press("e")
    assert page.get_by_test_id("tool-eraser").get_attribute("aria-pressed") == "true"
    page.keyboard.press("?")
    help_overlay = page.get_by_test_id("help-overlay")
    help_overlay.wait_for(state="visible")
    assert "Undo" in help_overlay.inner_text() and "Next image" in help_overlay.inner_text()
    shot(page, "workspace-help")
    page.keyboard.press("Escape")
    help_overlay.wait_for(state="hidden")
    # Zoom with the keyboard, reset with 0.
    page.keyboard.press("+")
    page.wait_for_function("() => window.__medlabelWorkspace.viewer.zoom > 1.2")
    page.keyboard.press("0")
    page.wait_for_function("() => window.__medlabelWorkspace.viewer.zoom === 1")
    # DICOM header panel (de-identified).
    page.locator("[data-testid=dicom-panel] > summary").click()
    table = page.get_by_test_id("dicom-table")
    table.wait_for()
    assert "Modality" in table.inner_text()
    assert "PatientName" not in table.inner_text() or "ANON" in table.inner_text()
    shot(page, "workspace-mr-dicom")


def test_conflict_is_shown_never_overwritten(page: Any, browser: Any, setup: Setup) -> None:
    s = setup
    login(page, s)
    open_image(page, s, s.ct)
    page.locator("[data-testid=class-tag][data-label=normal]").click()
    page.get_by_test_id("save-annotation").click()
    v1 = wait_saved(page)
    ann = my_annotation(page, s, s.ct)

    # The same user saves from another session meanwhile.
    other = browser.new_context()
    try:
        other.request.post(
            f"{s.url}/api/auth/login", data={"username": "rad", "password": PASSWORD}
        )
        r = other.request.put(
            f"{s.url}/api/annotations/{ann['id']}",
            data={"base_version": v1, "content": {"classes": ["abnormal"]}, "message": "other tab"},
        )
        assert r.ok, r.text()
        theirs = r.json()["version"]
    finally:
        other.close()

    page.get_by_test_id("note-input").fill("mine")
    page.get_by_test_id("add-note").click()
    page.get_by_test_id("save-annotation").click()
    dialog = page.get_by_test_id("conflict-dialog")
    dialog.wait_for()
    assert "rad saved version" in dialog.inner_text()
    shot(page, "workspace-conflict")
    page.get_by_test_id("conflict-dialog-draft").click()
    page.get_by_test_id("restore-draft").wait_for()
    # Theirs is shown and kept on the server; mine is a draft.
    assert pressed(page, "class-tag", "abnormal")
    assert page.get_by_test_id("note-item").count() == 0
    assert my_annotation(page, s, s.ct)["version"] == theirs
    assert api(page, s, f"/images/{s.ct}/draft")["content"]["notes"][0]["text"] == "mine"
    shot(page, "workspace-conflict-theirs")

    # Restore my draft on top of theirs and save: a new revision, theirs in history.
    page.get_by_test_id("restore-draft").click()
    wait_text(page, "save-status", "Draft autosaved", "startswith")
    page.get_by_test_id("note-item").wait_for()
    page.get_by_test_id("save-annotation").click()
    v3 = wait_saved(page, theirs)
    revisions = api(page, s, f"/annotations/{ann['id']}/revisions")
    assert [r["message"] for r in revisions][1] == "other tab"
    assert revisions[0]["content"]["notes"][0]["text"] == "mine"
    wait_count(page, "revision-item", 3)

    # Restore the first revision from the history panel.
    page.get_by_test_id("restore-revision").last.click()
    wait_saved(page, v3)
    assert pressed(page, "class-tag", "normal")
    assert page.get_by_test_id("note-item").count() == 0
    shot(page, "workspace-history-restored")


def test_autosaved_draft_is_offered_on_reopening(page: Any, setup: Setup) -> None:
    s = setup
    login(page, s)
    open_image(page, s, s.mr)
    page.keyboard.press("b")
    rect = image_rect(page)
    drag(page, at(rect, 0.3, 0.3), at(rect, 0.6, 0.35))
    page.get_by_test_id("note-input").fill("not finished")
    page.get_by_test_id("add-note").click()
    wait_text(page, "save-status", "Draft autosaved", "startswith")
    draft = api(page, s, f"/images/{s.mr}/draft")
    assert draft["has_mask"] and draft["annotation_id"] is None
    page.reload()
    dialog = page.get_by_test_id("draft-dialog")
    dialog.wait_for(timeout=30_000)
    shot(page, "workspace-draft-offer")
    page.get_by_test_id("draft-dialog-restore").click()
    wait_text(page, "save-status", "Draft autosaved", "startswith")
    assert page.get_by_test_id("note-item").count() == 1
    assert page.evaluate("() => window.__medlabelWorkspace.viewer.hasDrawing()")
    page.get_by_test_id("save-annotation").click()
    wait_saved(page)
    assert page.request.get(f"{s.url}/api/images/{s.mr}/draft").status == 204


def test_filter_stats_submit_and_next(page: Any, setup: Setup) -> None:
    s = setup
    login(page, s)
    open_image(page, s, s.ct)
    rect = image_rect(page)
    page.keyboard.press("b")
    page.keyboard.press("]")
    drag(page, at(rect, 0.25, 0.5), at(rect, 0.75, 0.5))
    probe = "() => window.__medlabelWorkspace.viewer.valueAt([2, 8, 8])"
    before = page.evaluate(probe)
    # A view filter replaces the displayed pixels, never the drawing.
    page.get_by_test_id("view-filter").select_option("gaussian")
    page.wait_for_function(f"() => ({probe})() !== {before}", timeout=20_000)
    assert page.evaluate("() => window.__medlabelWorkspace.viewer.hasDrawing()")
    shot(page, "workspace-ct-gaussian")
    page.get_by_test_id("view-filter").select_option("")
    page.wait_for_function(f"() => ({probe})() === {before}", timeout=20_000)

    # Region statistics in HU.
    page.locator("[data-testid=stats-panel] > summary").click()
    page.get_by_test_id("compute-stats").click()
    row = page.get_by_test_id("stats-row")
    row.wait_for()
    assert "lesion" in row.inner_text()
    assert "HU" in page.get_by_test_id("stats-result").inner_text()
    shot(page, "workspace-ct-stats")

    # Submit saves first, then submits; the next image follows.
    page.get_by_test_id("submit-annotation").click()
    wait_text(page, "annotation-state", "submitted")
    assert my_annotation(page, s, s.ct)["state"] == "submitted"
    page.get_by_test_id("next-image").click()
    page.wait_for_url(re.compile(rf"#/images/(?!{s.ct}$)\d+$"))
    page.wait_for_selector(READY, timeout=30_000)


def test_mask_tools_lasso_fill_eraser_ruler(page: Any, setup: Setup) -> None:
    s = setup
    login(page, s)
    open_image(page, s, s.mr)
    image = api(page, s, f"/images/{s.mr}")
    rect = image_rect(page)
    k = slice_number(page)[0]
    disp = displayed_indices(image, "axial", k)
    h, w = disp.shape

    # Lasso: an outline that is filled on release.
    page.keyboard.press("l")
    corners = [(0.2, 0.2), (0.45, 0.2), (0.45, 0.45), (0.2, 0.45), (0.2, 0.21)]
    page.mouse.move(*at(rect, *corners[0]))
    page.mouse.down()
    for c in corners[1:]:
        page.mouse.move(*at(rect, *c), steps=8)
    page.mouse.up()
    inside = {
        int(disp[i, j])
        for i in range(int(0.22 * h), int(0.43 * h))
        for j in range(int(0.22 * w), int(0.43 * w))
    }

    # Eraser through the middle of it.
    page.keyboard.press("e")
    page.keyboard.press("]")
    a = at(rect, 0.1, 0.335)
    drag(page, a, at(rect, 0.55, 0.335))
    erase_row = cell(rect, a, disp.shape)[0]

    # Undo / redo work for mask edits.
    count = "() => window.__medlabelWorkspace.viewer.nv.drawBitmap.reduce((n, v) => n + (v > 0), 0)"
    erased = page.evaluate(count)
    page.keyboard.press("Control+z")
    assert page.evaluate(count) > erased
    page.keyboard.press("Control+Shift+z")
    assert page.evaluate(count) == erased

    # Flood fill of a range that holds every voxel: the whole connected slice.
    page.keyboard.press("f")
    page.get_by_test_id("label-select").select_option("organ")
    page.get_by_test_id("fill-min").fill("-100000")
    page.get_by_test_id("fill-max").fill("100000")
    page.get_by_test_id("fill-max").press("Escape")  # leave the field: shortcuts work again
    page.keyboard.press("ArrowUp")  # another slice
    assert image_rect(page) == rect  # the tool's controls did not move the viewer
    page.mouse.click(*at(rect, 0.7, 0.7))
    shot(page, "workspace-mr-fill")

    # Ruler: a distance in mm (spacing 1 mm here: unknown geometry).
    page.keyboard.press("m")
    drag(page, at(rect, 0.1, 0.9), at(rect, 0.6, 0.9))
    item = page.get_by_test_id("measurement-item")
    item.wait_for()
    mm = float(re.search(r"([\d.]+) mm", item.inner_text()).group(1))
    assert mm == pytest.approx(0.5 * w * image["spacing"][2], rel=0.05)
    shot(page, "workspace-mr-tools")

    # A note about the crosshair position (a region), not the whole image.
    page.get_by_test_id("note-attach").select_option("crosshair")
    page.get_by_test_id("note-input").fill("check this spot")
    page.get_by_test_id("add-note").click()
    crosshair = page.evaluate("() => window.__medlabelWorkspace.crosshairVoxel()")

    # Visibility toggles per label.
    eye = page.locator("[data-testid=label-row][data-label=organ] [data-testid=label-visibility]")
    eye.click()
    assert eye.get_attribute("aria-pressed") == "false"
    eye.click()

    page.keyboard.press("Control+s")
    wait_saved(page)
    head = my_annotation(page, s, s.mr)["head"]
    mask = saved_mask(page, s, head["id"])
    flat = mask.reshape(-1)
    lesion = {int(i) for i in np.flatnonzero(flat == 1)}
    assert inside - {int(v) for v in disp[erase_row - 2 : erase_row + 3].ravel()} <= lesion
    assert not lesion & {int(v) for v in disp[erase_row, int(0.25 * w) : int(0.4 * w)]}
    (note,) = head["content"]["notes"]
    assert note["text"] == "check this spot"
    assert note["position"] == pytest.approx(crosshair, abs=0.01)
    organ_plane = displayed_indices(image, "axial", k + 1)
    assert {int(v) for v in organ_plane.ravel()} == {int(i) for i in np.flatnonzero(flat == 2)}


@pytest.mark.parametrize("name", ["RG3_J2KR.dcm", "MR2_J2KI.dcm"])
def test_2d_images_of_other_views(
    page: Any, setup: Setup, live_server: LiveServer, tmp_path: Path, name: str
) -> None:
    """A radiograph (shown as a coronal view) and an oblique sagittal MR slice: the
    viewer shows them as the server does, and what is painted lands where it was shown."""
    s = setup
    source = Path(shutil.copy(sample_file(name), tmp_path / name))
    (image_id,) = import_paths(live_server.ctx, None, s.project_id, [source]).image_ids
    login(page, s)
    open_image(page, s, image_id)
    image = api(page, s, f"/images/{image_id}")
    view = image["context"]["native_view"]
    assert view != "axial"
    disp, labels = display_slice(
        np.arange(np.prod(image["shape"])).reshape(image["shape"]),
        np.asarray(image["affine"]),
        View(view),
        0,
    )
    edge = page.evaluate("() => window.__medlabelWorkspace.viewer.edgeLabels")
    assert edge == (labels if image["geometry_known"] else None)
    assert page.get_by_test_id(f"view-{view}").get_attribute("class").endswith("ws-on")

    rect = image_rect(page)
    page.keyboard.press("b")
    page.keyboard.press("[")
    page.keyboard.press("[")
    a, b = at(rect, 0.2, 0.3), at(rect, 0.7, 0.3)
    drag(page, a, b, 40)
    (row, c0), (_, c1) = cell(rect, a, disp.shape), cell(rect, b, disp.shape)
    page.keyboard.press("r")
    box_a, box_b = at(rect, 0.3, 0.5), at(rect, 0.6, 0.8)
    drag(page, box_a, box_b)
    shot(page, f"workspace-2d-{view}")
    page.keyboard.press("Control+s")
    wait_saved(page)

    head = my_annotation(page, s, image_id)["head"]
    mask = saved_mask(page, s, head["id"])
    assert {int(i) for i in np.flatnonzero(mask)} == {int(v) for v in disp[row, c0 : c1 + 1]}
    (box,) = head["content"]["boxes"]
    fa, fb = frac(rect, box_a), frac(rect, box_b)
    h, w = disp.shape
    inside = {
        int(disp[i, j])
        for i in range(h)
        for j in range(w)
        if fa[1] <= (i + 0.5) / h <= fb[1] and fa[0] <= (j + 0.5) / w <= fb[0]
    }
    assert box_voxels(box, tuple(image["shape"])) == inside


@pytest.mark.parametrize(
    ("affine", "shape", "dtype"),
    [
        ([[0, 0, 0.5, -72], [0, 0.5, 0, -143], [-2.5, 0, 0, 8.7]], (5, 7, 6), np.int16),  # LPI
        ([[0, 0, 0.5, -72], [0, 0.5, 0, -143], [2.5, 0, 0, 8.7]], (5, 7, 6), np.int16),  # LPS
        ([[0, 0, 0.5, 0], [0, -0.5, 0, 0], [2.5, 0, 0, 0]], (3, 4, 6), np.float32),  # LAS
        ([[0, 0, -0.5, 0], [0, -0.5, 0, 0], [-2.5, 0, 0, 0]], (5, 4, 6), np.uint8),  # RAI
        ([[2.0, 0, 0, 3], [0, 0, -1.0, 5], [0, -1.5, 0, 9]], (4, 6, 5), np.float32),  # sagittal
        ([[0, 0, 1.0, 0], [0, 1.0, 0, 0], [1.0, 0, 0, 0]], (1, 4, 5, 3), np.uint8),  # RGB
    ],
    ids=["LPI", "LPS", "LAS", "RAI", "sagittal", "rgb"],
)
def test_volumes_are_reordered_to_ras_like_nibabel(
    page: Any,
    live_server: LiveServer,
    affine: list[list[float]],
    shape: tuple[int, ...],
    dtype: Any,
) -> None:
    """The browser reorders volumes to RAS before NiiVue sees them (ras.js): the same
    voxels and affine as nibabel's closest canonical orientation."""
    import base64

    import nibabel as nib

    from medlabel.io.nifti import nifti_header_bytes

    aff = np.vstack([np.asarray(affine, dtype=float), [0, 0, 0, 1]])
    arr = np.random.default_rng(0).integers(0, 200, size=shape).astype(dtype)
    data = nifti_header_bytes(arr.shape, arr.dtype, aff) + np.ascontiguousarray(arr).tobytes()
    page.goto(f"{live_server.url}/#/login")
    out = page.evaluate(
        """async (b64) => {
            const { toRasOrder } = await import("/workspace/ras.js");
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const result = new Uint8Array(toRasOrder(bytes.buffer));
            let s = "";
            for (let i = 0; i < result.length; i += 0x8000) {
                s += String.fromCharCode(...result.subarray(i, i + 0x8000));
            }
            return btoa(s);
        }""",
        base64.b64encode(data).decode(),
    )
    ours = nib.Nifti1Image.from_bytes(base64.b64decode(out))
    canonical = nib.as_closest_canonical(nib.Nifti1Image.from_bytes(data))
    assert nib.aff2axcodes(ours.affine) == ("R", "A", "S")
    assert np.allclose(ours.affine, canonical.affine, atol=1e-4)
    assert np.array_equal(np.asarray(ours.dataobj), np.asarray(canonical.dataobj))
