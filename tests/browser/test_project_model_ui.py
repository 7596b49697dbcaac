"""The AI box backed by the project's active segmentation model, in a real browser: the
Tools panel offers it only once the project has a model; chosen, a dragged box runs it
at once and Enter accepts its proposal as a revision naming the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from medlabel.services.jobs import run_in_foreground
from tests.browser.conftest import LiveServer, shot
from tests.browser.test_ai_tools import ai_box, settled_pending, wait_status
from tests.browser.test_workspace import READY, at, image_rect
from tests.conftest import PASSWORD
from tests.engines.deep.conftest import _need_train_extra
from tests.jobs.test_train_kind import FAST, World

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class _Site:
    """What the helpers of test_ai_tools need of a setup: the server's address."""

    def __init__(self, url: str) -> None:
        self.url = url


def _open(page: Any, url: str, image_id: int, *, reload: bool = False) -> None:
    if reload:
        page.reload()
    else:
        page.goto(f"{url}/#/images/{image_id}")
    page.wait_for_selector(READY, timeout=30_000)
    page.evaluate("() => { document.querySelector('[data-testid=classical-tools]').open = true; }")
    page.get_by_test_id("classical-engine").wait_for()
    page.evaluate("() => window.__medlabelWorkspace.ai.loadEngines()")


def _api(page: Any, url: str, path: str) -> Any:
    r = page.request.get(f"{url}/api{path}")
    assert r.ok, (path, r.status, r.text())
    return r.json()


def test_project_model_ai_box_in_the_workspace(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    _need_train_extra()
    ctx, url = live_server.ctx, live_server.url
    world = World(ctx, tmp_path)
    r = page.request.post(f"{url}/api/auth/login", data={"username": "ann", "password": PASSWORD})
    assert r.ok, r.text()
    image_id = world.image_ids[3]

    # no model yet: not offered
    _open(page, url, image_id)
    assert page.get_by_test_id("ai-engine-project-model").count() == 0

    job = run_in_foreground(ctx, world.admin, "train", FAST, project_id=world.project_id)
    assert job.job.state == "succeeded", job.job.error
    _open(page, url, image_id, reload=True)
    option = page.get_by_test_id("ai-engine-project-model")
    assert "AI box (project model:" in option.inner_text()
    page.get_by_test_id("classical-engine").select_option("project-model")
    page.get_by_test_id("ai-engine-desc").wait_for()
    assert page.evaluate("() => window.__medlabelWorkspace.ai.auto")

    rect = image_rect(page)
    ai_box(page, rect, (0.1, 0.1), (0.9, 0.9))  # runs at once, no Run button
    wait_status(page, r"^proposal in ")
    # a click inside refines it (the clicked pixel joins the mask, so it is never empty)
    page.keyboard.press("Shift+C")
    page.mouse.click(*at(rect, 0.5, 0.5))
    page.wait_for_function(
        "() => window.__medlabelWorkspace.ai.proposals.pending"
        ".some((p) => p.prompt.positive?.length === 1)",
        timeout=90_000,
    )
    wait_status(page, r"^proposal in ")
    (pending,) = settled_pending(page, _Site(url), image_id, 1)
    assert pending["engine"].startswith("project-model:") and pending["version"] == "v1"
    assert pending["voxels"] > 0 and pending["prompt"]["box"]
    shot(page, "project-model-ai-box")
    page.keyboard.press("Enter")
    wait_status(page, r"^accepted 1 proposal")
    (ann,) = _api(page, url, f"/images/{image_id}/annotations")
    assert ann["head"]["engine_name"] == pending["engine"]
