"""Pre-annotation proposals in the workspace, in a real Chromium: a classification
proposal with its class probabilities as bars and its saliency map over the image,
accepted into the annotation (read back through the API); and a segmentation proposal's
uncertainty map toggled over the slice."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from medlabel.services.jobs import run_in_foreground
from medlabel.storage.db.models import Proposal
from tests.browser.conftest import LiveServer, shot
from tests.conftest import PASSWORD
from tests.engines.deep.conftest import _need_train_extra
from tests.engines.deep.test_classification import crops
from tests.jobs.test_preannotate_cls_det import ContentWorld
from tests.jobs.test_train_kind import FAST, World

pytestmark = [pytest.mark.browser, pytest.mark.slow]

READY = "[data-testid=workspace][data-state=ready]"


def _login(page: Any, url: str, username: str) -> None:
    r = page.request.post(
        f"{url}/api/auth/login", data={"username": username, "password": PASSWORD}
    )
    assert r.ok, r.text()


def _after_preload() -> None:
    """The server preloads LiteMedSAM in a thread; training in this process while it
    imports the same modules can fail, so let it finish first."""
    for thread in threading.enumerate():
        if thread.name == "medlabel-preload-engines":
            thread.join(300)


def _heat_pixels(page: Any) -> int:
    """Non-transparent pixels on the heat overlay canvas."""
    count: int = page.evaluate(
        """() => {
          const c = document.querySelector('[data-testid=heat-overlay]');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
          return n;
        }"""
    )
    return count


def test_classification_proposal_with_saliency(
    live_server: LiveServer, page: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_train_extra()
    monkeypatch.setenv("MEDLABEL_CACHE", str(tmp_path / "cache"))
    _after_preload()
    ctx, url = live_server.ctx, live_server.url
    w = ContentWorld(ctx, tmp_path)
    w.train_cls()
    samples = crops(8, side=64)  # larger than the training crops: the model resizes
    (image_id,) = w.add_images({"coins_new": samples["coins"][7]})
    job = run_in_foreground(ctx, w.ann, "preannotate", {"task": "cls"}, project_id=w.project_id)
    assert job.job.state == "succeeded", job.job.error
    with ctx.db.read() as s:
        (proposal,) = s.scalars(select(Proposal).where(Proposal.image_id == image_id))
    probs = proposal.info["probabilities"]

    _login(page, url, "ann")
    page.goto(f"{url}/#/images/{image_id}")
    page.wait_for_selector(READY, timeout=120_000)
    card = page.locator("[data-testid=class-proposal]")
    card.wait_for(timeout=30_000)
    assert card.locator("[data-testid=proposed-class]").inner_text() == proposal.label
    bars = card.locator("[data-testid=class-probability]")
    assert bars.count() == 2
    shown = [bars.nth(i).get_attribute("data-label") for i in range(2)]
    assert shown == sorted(probs, key=lambda k: -probs[k])  # most probable first
    assert f"v{1}" in card.locator("[data-testid=proposal-model]").inner_text()
    assert _heat_pixels(page) == 0

    card.locator("[data-testid=toggle-saliency]").click()
    page.wait_for_selector(f"[data-testid=heat-overlay][data-heat=saliency-{proposal.id}]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=toggle-saliency]')"
        ".getAttribute('aria-pressed') === 'true'"
    )
    page.wait_for_timeout(300)  # the next animation frame paints the map
    assert _heat_pixels(page) > 100
    assert page.locator("[data-testid=saliency-legend]").is_visible()
    shot(page, "preannotation-classification-saliency")

    card.locator("[data-testid=accept-proposal]").click()
    page.locator("[data-testid=class-proposal]").wait_for(state="detached", timeout=30_000)
    anns = page.request.get(f"{url}/api/images/{image_id}/annotations").json()
    (mine,) = [a for a in anns if a["owner_id"] == w.ann.id]
    head = mine["head"]
    assert head["content"]["classes"] == [proposal.label]
    assert (head["source"], head["engine_name"], head["engine_version"]) == (
        "engine",
        proposal.engine_name,
        "v1",
    )
    assert _heat_pixels(page) == 0  # the map went with the proposal
    # the class is tagged in the Classification panel
    tag = page.locator(f"[data-testid=class-tag][data-label={proposal.label}]")
    assert tag.get_attribute("aria-pressed") == "true"
    other = next(n for n in probs if n != proposal.label)
    assert (
        page.locator(f"[data-testid=class-tag][data-label={other}]").get_attribute("aria-pressed")
        == "false"
    )
    shot(page, "preannotation-classification-accepted")


def test_detection_boxes_are_drawn_with_scores(
    live_server: LiveServer, page: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_train_extra()
    monkeypatch.setenv("MEDLABEL_CACHE", str(tmp_path / "cache"))
    _after_preload()
    from tests.engines.deep.test_detection import coin_crops

    ctx, url = live_server.ctx, live_server.url
    w = ContentWorld(ctx, tmp_path)
    w.train_det()
    (image_id,) = w.add_images({"coins_boxes": coin_crops(8)[7][0]})
    params = {"task": "det", "min_score": 0.0}
    job = run_in_foreground(ctx, w.ann, "preannotate", params, project_id=w.project_id)
    assert job.job.state == "succeeded", job.job.error
    n = job.job.result["proposals"]
    assert n > 0

    _login(page, url, "ann")
    page.goto(f"{url}/#/images/{image_id}")
    page.wait_for_selector(READY, timeout=120_000)
    card = page.locator("[data-testid=detection-proposal]")
    card.wait_for(timeout=30_000)
    assert card.locator("[data-testid=box-proposal]").count() == n
    page.wait_for_timeout(300)
    assert _heat_pixels(page) > 0  # the boxes
    shot(page, "preannotation-detection-boxes")
    card.locator("[data-testid=reject-box]").first.click()
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=box-proposal]').length === {n - 1}"
    )
    if n > 1:
        card.locator("[data-testid=accept-proposal]").click()
        card.wait_for(state="detached", timeout=30_000)
        anns = page.request.get(f"{url}/api/images/{image_id}/annotations").json()
        (mine,) = [a for a in anns if a["owner_id"] == w.ann.id]
        assert len(mine["head"]["content"]["boxes"]) == n - 1


def test_uncertainty_overlay_of_a_segmentation_proposal(
    live_server: LiveServer, page: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_train_extra()
    monkeypatch.setenv("MEDLABEL_CACHE", str(tmp_path / "cache"))
    _after_preload()
    ctx, url = live_server.ctx, live_server.url
    w = World(ctx, tmp_path, labelled=3, images=4)
    # a few more epochs than the job tests: a map that is not uniformly unsure
    params = {**FAST, "epochs": 6, "options": {"samples_per_epoch": 8, "base_filters": 8}}
    job = run_in_foreground(ctx, w.admin, "train", params, project_id=w.project_id)
    assert job.job.state == "succeeded", job.job.error
    pre = run_in_foreground(ctx, w.ann, "preannotate", {}, project_id=w.project_id)
    assert pre.job.state == "succeeded", pre.job.error
    with ctx.db.read() as s:
        mine = list(s.scalars(select(Proposal).where(Proposal.user_id == w.ann.id)))
    assert mine, "pre-annotation proposed nothing"
    image_id = mine[0].image_id

    _login(page, url, "ann")
    page.goto(f"{url}/#/images/{image_id}")
    page.wait_for_selector(READY, timeout=120_000)
    card = page.locator("[data-testid=seg-proposal]").first
    card.wait_for(timeout=30_000)
    assert _heat_pixels(page) == 0
    card.locator("[data-testid=toggle-uncertainty]").click()
    page.wait_for_selector("[data-testid=heat-overlay][data-heat^=uncertainty-]")
    page.wait_for_timeout(300)
    assert _heat_pixels(page) > 0
    assert page.locator("[data-testid=uncertainty-legend]").is_visible()
    shot(page, "preannotation-segmentation-uncertainty")
    card.locator("[data-testid=toggle-uncertainty]").click()
    page.wait_for_selector("[data-testid=heat-overlay][data-heat='']")
    page.wait_for_timeout(300)
    assert _heat_pixels(page) == 0
    # the mask proposal itself is still decided in the AI bar
    page.locator("[data-testid=ai-bar] [data-testid=reject-proposal]").click()
    page.locator("[data-testid=seg-proposal]").first.wait_for(state="detached", timeout=30_000)
