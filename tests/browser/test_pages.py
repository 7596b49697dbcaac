"""The app's pages in a real Chromium against a live server with real imported images:
login, project list, project page (images, filters, thumbnails, upload, labels, exports,
next image), the admin page and logout."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from medlabel.annotation.content import AnnotationContent, Box
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.security.roles import Role
from medlabel.services.annotations import save_annotation, transition
from medlabel.services.imports import import_paths
from medlabel.services.projects import add_labels, create_project, list_members, set_member
from medlabel.services.users import create_user, principal_of
from tests.browser.conftest import LiveServer, shot
from tests.conftest import sample_file

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery"
# The workspace is UI helper B's module; these tests only check that the pages navigate
# to it, so it is replaced by a stub that shows which image it was asked for.
WORKSPACE_STUB = """
export async function mountWorkspace(root, ctx) {
  const p = document.createElement("p");
  p.dataset.testid = "workspace-stub";
  p.textContent = "workspace " + ctx.params.imageId;
  root.replaceChildren(p);
  return { unmount() {} };
}
"""


@dataclass
class Setup:
    server: LiveServer
    project_id: int
    admin: Any
    image_ids: list[int]


def _setup(server: LiveServer, paths: list[Path], *, name: str = "Chest study") -> Setup:
    ctx = server.ctx
    user = create_user(ctx, "admin", PASSWORD, Role.ADMIN, full_name="Ada Admin")
    admin = principal_of(user)
    project = create_project(ctx, admin, name, description="Real pydicom and nibabel images")
    add_labels(ctx, admin, project.id, [LabelSpec(name="finding", kind=LabelKind.BOX)])
    ids = import_paths(ctx, None, project.id, paths).image_ids if paths else []
    return Setup(server, project.id, admin, ids)


def _annotate(setup: Setup, image_id: int, *actions: str) -> None:
    """Save a box annotation of an image, then apply review actions (submit, approve)."""
    ctx = setup.server.ctx
    box = Box(label="finding", start=(-0.5, 2, 2), end=(0.5, 8, 8))
    view = save_annotation(ctx, setup.admin, image_id, content=AnnotationContent(boxes=[box]))
    for action in actions:
        ann = view.annotation
        view = transition(ctx, setup.admin, ann.id, action, ann.version)


def _login(page: Any, username: str = "admin", password: str = PASSWORD) -> None:
    page.fill("[data-testid=login-username]", username)
    page.fill("[data-testid=login-password]", password)
    page.click("[data-testid=login-submit]")


def _open(page: Any, setup: Setup, hash_: str = "#/") -> None:
    page.route(
        "**/workspace/workspace.js",
        lambda r: r.fulfill(status=200, content_type="text/javascript", body=WORKSPACE_STUB),
    )
    page.goto(f"{setup.server.url}/{hash_}")
    page.wait_for_selector("[data-testid=login-username]")
    _login(page)


def _thumbnails_loaded(page: Any) -> list[int]:
    """naturalWidth of every thumbnail once all have finished loading."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=thumbnail]')].every(i => i.complete)"
    )
    widths: list[int] = page.eval_on_selector_all(
        "[data-testid=thumbnail]", "imgs => imgs.map(i => i.naturalWidth)"
    )
    return widths


def _wait_rows(page: Any, texts: list[str]) -> None:
    """Wait until the image list shows exactly one row per text, each containing it."""
    page.wait_for_function(
        """texts => {
            const rows = [...document.querySelectorAll('[data-testid=image-row]')];
            return rows.length === texts.length
                && texts.every((t, i) => rows[i].innerText.includes(t));
        }""",
        arg=texts,
    )


def test_login_errors_then_returns_to_the_wanted_page(live_server: LiveServer, page: Any) -> None:
    setup = _setup(live_server, [sample_file("CT_small.dcm")])
    # A deep link before signing in leads to the login page, and back after it.
    page.goto(f"{live_server.url}/#/projects/{setup.project_id}")
    page.wait_for_selector("[data-testid=login-username]")
    _login(page, password="not the password")
    error = page.locator("[data-testid=login-error]")
    error.wait_for(state="visible")
    assert "wrong username or password" in error.inner_text()
    assert page.input_value("[data-testid=login-password]") == ""
    shot(page, "pages-login-error")

    _login(page)
    page.wait_for_selector("[data-testid=image-row]")
    assert page.url.endswith(f"#/projects/{setup.project_id}")
    assert page.inner_text("[data-testid=current-user]") == "admin"
    assert page.inner_text("[data-testid=current-role]").lower() == "admin"


def test_project_list_shows_cards_with_counts(
    live_server: LiveServer, page: Any, nifti_file: Path
) -> None:
    paths = [sample_file("CT_small.dcm"), sample_file("MR_small.dcm"), nifti_file]
    setup = _setup(live_server, paths)
    _annotate(setup, setup.image_ids[0])
    _annotate(setup, setup.image_ids[1], "submit", "approve")
    create_project(live_server.ctx, setup.admin, "Empty project")
    _open(page, setup)
    cards = page.locator("[data-testid=project-card]")
    cards.first.wait_for()
    assert cards.count() == 2
    chest = cards.filter(has_text="Chest study")
    assert chest.locator("[data-testid=project-total]").inner_text() == "3 images"
    counts = {
        s: chest.locator(f"[data-testid=count-{s}]").inner_text()
        for s in ("unlabelled", "in_progress", "submitted", "approved")
    }
    assert counts == {"unlabelled": "1", "in_progress": "1", "submitted": "0", "approved": "1"}
    assert chest.locator(".progress-seg").count() == 3
    assert "Real pydicom and nibabel images" in chest.inner_text()
    empty = cards.filter(has_text="Empty project")
    assert empty.locator("[data-testid=project-total]").inner_text() == "0 images"
    shot(page, "pages-projects")

    chest.click()
    page.wait_for_selector("[data-testid=project-title]")
    assert page.url.endswith(f"#/projects/{setup.project_id}")
    assert "Next unlabelled" in page.inner_text("[data-testid=next-image]")
    page.select_option("[data-testid=filter-status]", "in_progress")
    _wait_rows(page, ["In progress"])
    shot(page, "pages-project-in-progress")


def test_new_project_dialog_creates_a_project_with_deid_options(
    live_server: LiveServer, page: Any
) -> None:
    setup = _setup(live_server, [])
    _open(page, setup)
    page.click("[data-testid=new-project]")
    dialog = page.locator("[data-testid=new-project-dialog]")
    dialog.wait_for()
    dialog.locator("[data-testid=dialog-submit]").click()
    assert "name" in dialog.locator("[role=alert]").inner_text().lower()
    page.fill("[data-testid=project-name-input]", "Liver CT")
    page.fill("[data-testid=project-description-input]", "Segment the liver")
    dialog.get_by_label(re.compile("Shift dates")).check()
    shot(page, "pages-new-project")
    dialog.locator("[data-testid=dialog-submit]").click()
    page.wait_for_selector("[data-testid=project-title]")
    assert page.inner_text("[data-testid=project-title]") == "Liver CT"
    assert "dates shifted" in page.inner_text("[data-testid=project-summary]")
    # A second project with the same name: the server's message, dialog stays open.
    page.goto(f"{live_server.url}/#/")
    page.click("[data-testid=new-project]")
    page.fill("[data-testid=project-name-input]", "Liver CT")
    page.click("[data-testid=dialog-submit]")
    alert = page.locator("[data-testid=new-project-dialog] [role=alert]")
    alert.wait_for(state="visible")
    assert "Liver CT" in alert.inner_text() or "exists" in alert.inner_text()


def test_project_page_lists_images_with_thumbnails_and_filters(
    live_server: LiveServer, page: Any, nifti_file: Path
) -> None:
    paths = [sample_file("CT_small.dcm"), sample_file("MR_small.dcm"), nifti_file]
    setup = _setup(live_server, paths)
    _open(page, setup, f"#/projects/{setup.project_id}")
    rows = page.locator("[data-testid=image-row]")
    rows.first.wait_for()
    assert rows.count() == 3
    widths = _thumbnails_loaded(page)
    assert len(widths) == 3 and all(w > 0 for w in widths), widths
    assert page.inner_text("[data-testid=project-total]") == "3 images"
    assert page.inner_text("[data-testid=image-range]") == "1–3 of 3"
    shot(page, "pages-project")

    page.select_option("[data-testid=filter-modality]", "CT")
    _wait_rows(page, ["CT"])

    page.select_option("[data-testid=filter-modality]", "")
    page.fill("[data-testid=filter-q]", "anatomical")
    _wait_rows(page, ["anatomical"])

    page.fill("[data-testid=filter-q]", "")
    page.select_option("[data-testid=filter-status]", "approved")
    page.wait_for_selector("text=No images match these filters.")
    assert rows.count() == 0
    page.click("text=Clear filters")
    page.wait_for_function("document.querySelectorAll('[data-testid=image-row]').length === 3")

    # Sorting by name, descending, through the column header.
    page.click("th:has-text('Name') button")
    page.click("th:has-text('Name') button")
    page.wait_for_selector("th[aria-sort=descending]")
    names = [
        n.strip() for n in page.locator("[data-testid=image-row] .image-name").all_inner_texts()
    ]
    assert names == sorted(names, reverse=True)

    page.click("[data-testid=view-grid]")
    page.wait_for_selector(".image-grid [data-testid=image-row]")
    assert all(w > 0 for w in _thumbnails_loaded(page))
    shot(page, "pages-project-grid")

    # Clicking an image opens the workspace route; the filters survive "back".
    rows.first.click()
    page.wait_for_selector("[data-testid=workspace-stub]")
    assert re.search(r"#/images/\d+$", page.url)
    page.go_back()
    page.wait_for_selector(".image-grid [data-testid=image-row]")


def test_next_unlabelled_opens_the_workspace(live_server: LiveServer, page: Any) -> None:
    setup = _setup(live_server, [sample_file("CT_small.dcm")])
    _open(page, setup, f"#/projects/{setup.project_id}")
    button = page.locator("[data-testid=next-image]")
    button.wait_for()
    assert "Start labelling" in button.inner_text()
    button.click()
    page.wait_for_selector("[data-testid=workspace-stub]")
    image_id = int(page.url.rsplit("/", 1)[1])
    assert page.inner_text("[data-testid=workspace-stub]") == f"workspace {image_id}"


def test_empty_project_then_upload_a_dicom_through_the_ui(
    live_server: LiveServer, page: Any
) -> None:
    setup = _setup(live_server, [])
    _open(page, setup, f"#/projects/{setup.project_id}")
    page.wait_for_selector("text=No images yet — import some.")
    assert page.locator("[data-testid=next-image]").is_disabled()
    shot(page, "pages-project-empty")
    page.click("text=Import images")
    page.locator("[data-testid=import-files]").set_input_files(str(sample_file("CT_small.dcm")))
    assert "1 file selected" in page.inner_text("[data-testid=import-chosen]")
    page.click("[data-testid=import-submit]")
    report = page.locator("[data-testid=import-report]")
    report.wait_for(timeout=30_000)
    counts = page.locator("[data-testid=import-counts]")
    assert "1" in counts.locator("[data-count=images]").inner_text()
    deid = page.locator("[data-testid=deid-summary]")
    assert "1 DICOM instance" in deid.inner_text()
    assert page.locator("[data-testid=deid-actions] .badge").count() > 0
    page.wait_for_selector("[data-testid=import-history-row]")
    shot(page, "pages-import-result")

    page.click("[data-testid=tab-images]")
    rows = page.locator("[data-testid=image-row]")
    rows.first.wait_for()
    assert rows.count() == 1
    assert _thumbnails_loaded(page)[0] > 0
    assert page.inner_text("[data-testid=project-total]") == "1 image"

    # An unreadable file: the server's message and the problem list are shown.
    bad = live_server.settings.home / "broken.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    page.click("[data-testid=tab-import]")
    page.locator("[data-testid=import-files]").set_input_files(str(bad))
    page.click("[data-testid=import-submit]")
    alert = page.locator("[data-testid=import-result] .alert-error")
    alert.wait_for(timeout=30_000)
    assert "broken.dcm" in alert.inner_text()
    page.locator("[data-testid=toast-error]").first.wait_for()


def test_a_background_upload_reports_when_its_images_are_built(
    live_server: LiveServer, page: Any
) -> None:
    setup = _setup(live_server, [])
    _open(page, setup, f"#/projects/{setup.project_id}")
    page.click("[data-testid=tab-import]")
    folder = sample_file("CT_small.dcm").parent / "dicomdirtests" / "98892001" / "CT5N"
    page.locator("[data-testid=import-files]").set_input_files(sorted(map(str, folder.iterdir())))
    page.locator("[data-testid=import-background]").check()
    page.click("[data-testid=import-submit]")
    done = page.locator("[data-testid=import-built]")
    done.wait_for(timeout=60_000)
    assert "Import finished: 1 image" in done.inner_text()
    assert "5 DICOM instance" in page.inner_text("[data-testid=deid-summary]")
    page.wait_for_selector("[data-testid=import-status] >> text=done")
    shot(page, "pages-import-background")
    page.click("[data-testid=tab-images]")
    _wait_rows(page, ["CT"])


def test_dropping_a_file_on_the_drop_zone_imports_it(live_server: LiveServer, page: Any) -> None:
    setup = _setup(live_server, [])
    _open(page, setup, f"#/projects/{setup.project_id}")
    page.click("[data-testid=tab-import]")
    data = base64.b64encode(sample_file("MR_small.dcm").read_bytes()).decode()
    page.eval_on_selector(
        "[data-testid=dropzone]",
        """(zone, data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "MR_small.dcm"));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
        }""",
        data,
    )
    page.wait_for_selector("[data-testid=import-chosen] >> text=1 file selected")
    page.click("[data-testid=import-submit]")
    page.locator("[data-testid=import-report]").wait_for(timeout=30_000)
    page.click("[data-testid=tab-images]")
    _wait_rows(page, ["MR"])


def test_labels_are_listed_and_created(live_server: LiveServer, page: Any) -> None:
    setup = _setup(live_server, [])
    _open(page, setup, f"#/projects/{setup.project_id}")
    page.click("[data-testid=tab-labels]")
    rows = page.locator("[data-testid=label-row]")
    rows.first.wait_for()
    assert rows.count() == 1 and "finding" in rows.first.inner_text()
    page.fill("[data-testid=label-name]", "Liver")
    page.select_option("[data-testid=label-kind]", "mask")
    page.fill("[data-testid=label-value]", "7")
    page.click("summary:has-text('Coded concept')")
    page.get_by_label("Code value").fill("10200004")
    page.get_by_label("Scheme").fill("SCT")
    page.get_by_label("Meaning").fill("Liver")
    page.click("[data-testid=label-add]")
    page.wait_for_function("document.querySelectorAll('[data-testid=label-row]').length === 2")
    liver = rows.filter(has_text="Liver")
    text = liver.inner_text()
    assert "mask" in text and "7" in text and "SCT 10200004" in text
    # A duplicate name: the server's message inline.
    page.fill("[data-testid=label-name]", "Liver")
    page.click("[data-testid=label-add]")
    page.wait_for_selector("form[aria-label='Add a label'] .alert-error:visible")
    shot(page, "pages-labels")


def test_export_and_download_link(live_server: LiveServer, page: Any) -> None:
    setup = _setup(live_server, [sample_file("CT_small.dcm")])
    _open(page, setup, f"#/projects/{setup.project_id}")
    page.click("[data-testid=tab-exports]")
    page.select_option("[data-testid=export-format]", "csv")
    page.click("[data-testid=export-submit]")
    error = page.locator("[data-testid=panel-exports] .alert-error")
    error.wait_for()
    assert "no annotations" in error.inner_text()

    image_id = page.evaluate(
        f"fetch('/api/projects/{setup.project_id}/images').then(r => r.json())"
        ".then(p => p.items[0].id)"
    )
    content = AnnotationContent(
        boxes=[Box(label="finding", start=(-0.5, 10, 10), end=(0.5, 30, 40))]
    )
    save_annotation(live_server.ctx, setup.admin, image_id, content=content)
    page.click("[data-testid=export-submit]")
    page.locator("[data-testid=export-result]").wait_for()
    assert "Exported 1 image" in page.inner_text("[data-testid=export-result]")
    page.locator("[data-testid=export-row]").first.wait_for()
    with page.expect_download() as info:
        page.locator("[data-testid=export-result] [data-testid=export-download]").click()
    assert info.value.suggested_filename.endswith("-csv.zip")
    shot(page, "pages-exports")


def test_admin_creates_a_user_and_adds_them_to_the_project(
    live_server: LiveServer, page: Any
) -> None:
    setup = _setup(live_server, [sample_file("CT_small.dcm")])
    _open(page, setup)
    page.click("[data-testid=nav-admin]")
    page.wait_for_selector("[data-testid=user-row]")
    page.fill("[data-testid=user-username]", "bob")
    page.fill("[data-testid=user-fullname]", "Bob Builder")
    page.fill("[data-testid=user-password]", "a long enough password")
    page.select_option("[data-testid=user-role]", "annotator")
    page.click("[data-testid=user-create]")
    page.wait_for_selector("[data-testid=user-row][data-username=bob]")
    # A duplicate user: the server's message inline.
    page.fill("[data-testid=user-username]", "bob")
    page.fill("[data-testid=user-password]", "another long password")
    page.click("[data-testid=user-create]")
    page.locator("[data-testid=user-error]").wait_for(state="visible")
    assert "bob" in page.inner_text("[data-testid=user-error]")

    page.wait_for_selector("[data-testid=member-user] option:has-text('bob')", state="attached")
    page.select_option("[data-testid=member-project]", str(setup.project_id))
    bob_id = page.get_attribute("[data-testid=user-row][data-username=bob]", "data-user-id")
    page.select_option("[data-testid=member-user]", bob_id)
    assert page.input_value("[data-testid=member-role]") == "annotator"
    page.click("[data-testid=member-add]")
    page.wait_for_selector("[data-testid=member-row][data-username=bob]")
    members = {
        u.username: r for u, r in list_members(live_server.ctx, setup.admin, setup.project_id)
    }
    assert members["bob"] == "annotator"

    page.select_option(
        "[data-testid=member-row][data-username=bob] [data-testid=member-role-select]", "reviewer"
    )
    page.locator("[data-testid=toast-success]", has_text="reviewer").first.wait_for()
    members = {
        u.username: r for u, r in list_members(live_server.ctx, setup.admin, setup.project_id)
    }
    assert members["bob"] == "reviewer"
    shot(page, "pages-admin")

    page.click("[data-testid=user-menu] summary")
    shot(page, "pages-user-menu")
    page.click("[data-testid=logout]")
    page.wait_for_selector("[data-testid=login-username]")
    assert page.url.endswith("#/login")
    # The session is gone server-side as well.
    status = page.evaluate("fetch('/api/auth/me').then(r => r.status)")
    assert status == 401


def test_annotator_sees_no_reviewer_sections(live_server: LiveServer, page: Any) -> None:
    setup = _setup(live_server, [sample_file("CT_small.dcm")])
    ann = create_user(live_server.ctx, "ann", PASSWORD, Role.ANNOTATOR)
    set_member(live_server.ctx, setup.admin, setup.project_id, ann.id, "annotator")
    page.goto(f"{live_server.url}/#/")
    page.wait_for_selector("[data-testid=login-username]")
    _login(page, "ann")
    page.locator("[data-testid=project-card]").first.wait_for()
    assert page.locator("[data-testid=new-project]").count() == 0
    assert page.locator("[data-testid=nav-admin]").count() == 0
    page.locator("[data-testid=project-card]").first.click()
    page.wait_for_selector("[data-testid=image-row]")
    assert page.locator("[data-testid=tab-import]").count() == 0
    assert page.locator("[data-testid=tab-exports]").count() == 0
    page.click("[data-testid=tab-labels]")
    page.wait_for_selector("[data-testid=label-row]")
    assert page.locator("[data-testid=label-add]").count() == 0
    page.goto(f"{live_server.url}/#/admin")
    page.wait_for_selector("text=This page is for administrators.")
