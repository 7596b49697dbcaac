"""The learning loop from the UI in a real Chromium: an admin trains a model on the
approved labels (Models tab), pre-annotates the rest for the team, and an annotator
accepts a model proposal in the workspace."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import LiveServer
from tests.conftest import PASSWORD
from tests.engines.deep.conftest import _need_train_extra
from tests.jobs.test_train_kind import World

pytestmark = [pytest.mark.browser, pytest.mark.slow]

READY = "[data-testid=workspace][data-state=ready]"


def _login(page: Any, url: str, username: str) -> None:
    r = page.request.post(
        f"{url}/api/auth/login", data={"username": username, "password": PASSWORD}
    )
    assert r.ok, r.text()


def _open_models_tab(page: Any, url: str, project_id: int) -> None:
    """As the admin, on the project's Models tab, once the engine preload has finished
    (the server preloads LiteMedSAM in a thread at start-up; a training that imports the
    same modules concurrently can fail with an ImportError)."""
    for thread in threading.enumerate():
        if thread.name == "medlabel-preload-engines":
            thread.join(300)
    _login(page, url, "admin")
    page.goto(f"{url}/#/projects/{project_id}")
    page.click("[data-testid=tab-models]")


def test_train_preannotate_accept_from_the_ui(
    live_server: LiveServer, page: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need_train_extra()
    monkeypatch.setenv("MEDLABEL_CACHE", str(tmp_path / "cache"))
    w = World(live_server.ctx, tmp_path, labelled=3, images=5)
    url = live_server.url
    _open_models_tab(page, url, w.project_id)
    page.fill("[data-testid=train-epochs]", "1")
    page.click("[data-testid=train-start]")
    page.locator("[data-testid=models-job-done]").wait_for(timeout=300_000)
    row = page.locator("[data-testid=model-row]")
    assert row.count() == 1
    assert row.locator("[data-testid=model-active]").count() == 1

    page.click("[data-testid=preannotate-start]")
    done = page.locator("[data-testid=models-job-done]", has_text="proposal")
    done.wait_for(timeout=300_000)

    page.select_option("[data-testid=active-strategy]", "uncertainty")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=toast-success]')]"
        ".some((t) => /strategy saved/.test(t.textContent))",
        timeout=30_000,
    )
    project = page.request.get(f"{url}/api/projects/{w.project_id}").json()
    assert project["active_strategy"] == "uncertainty"

    # the annotator opens an unlabelled image: the model's proposals wait there
    with live_server.ctx.db.read() as s:
        from sqlalchemy import select

        from medlabel.storage.db.models import Proposal

        mine = list(s.scalars(select(Proposal).where(Proposal.user_id == w.ann.id)))
    assert mine, "pre-annotation proposed nothing"
    image_id = mine[0].image_id
    _login(page, url, "ann")
    page.goto(f"{url}/#/images/{image_id}")
    page.wait_for_selector(READY, timeout=120_000)
    page.locator("[data-testid=accept-proposal]:visible").wait_for(timeout=30_000)
    page.click("[data-testid=accept-proposal]")
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=accept-proposal]:not([hidden])')"
        " || document.querySelector('[data-testid=proposal-count]').textContent.trim() === ''",
        timeout=30_000,
    )
    with live_server.ctx.db.read() as s:
        accepted = s.get(Proposal, mine[0].id)
        assert accepted is not None
        assert accepted.state == "accepted" and accepted.revision_id is not None


def test_train_and_preannotate_a_classifier_from_the_ui(
    live_server: LiveServer, page: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task choice: a classifier trained on approved image classes, then run over the
    untagged images as the classification pre-annotation."""
    from tests.jobs.test_preannotate_cls_det import ContentWorld
    from tests.jobs.test_train_content_kind import tagged

    _need_train_extra()
    monkeypatch.setenv("MEDLABEL_CACHE", str(tmp_path / "cache"))
    w = ContentWorld(live_server.ctx, tmp_path)
    _, rest = tagged(w, per_class=3)
    url = live_server.url
    _open_models_tab(page, url, w.project_id)
    hint = page.locator("[data-testid=train-task-hint]")
    hint.wait_for()
    page.select_option("[data-testid=train-task]", "seg")
    assert page.locator("[data-testid=train-folds]").is_hidden()  # classification only
    page.select_option("[data-testid=train-task]", "cls")
    page.wait_for_function(
        "() => /approved classes/.test(document.querySelector("
        "'[data-testid=train-task-hint]').textContent)"
    )
    assert page.locator("[data-testid=preannotate-start]").is_disabled()  # no cls model yet
    page.fill("[data-testid=train-epochs]", "2")
    page.fill("[data-testid=train-folds]", "2")  # a cross-validated ensemble of 2 CNNs
    page.click("[data-testid=train-start]")
    page.locator("[data-testid=models-job-done]").wait_for(timeout=300_000)
    row = page.locator("[data-testid=model-row]")
    assert row.count() == 1 and "cls" in row.inner_text()
    assert "2-fold ensemble" in row.locator("[data-testid=model-ensemble]").inner_text()
    assert row.locator("[data-testid=model-active]").count() == 1

    page.click("[data-testid=preannotate-start]")
    done = page.locator("[data-testid=models-job-done]", has_text="proposal")
    done.wait_for(timeout=300_000)
    assert f"on {len(rest)} image(s)" in done.inner_text()
    page.screenshot(path=str(tmp_path / "models-cls.png"), full_page=True)
