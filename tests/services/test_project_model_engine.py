"""The AI box backed by the project's active segmentation model (``project-model``):
the engine cache, the engine list and proposals over the API, on a tiny model trained
in seconds on crops of scikit-image's coins photograph."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.core.settings import Settings
from medlabel.security.roles import ProjectRole, Role
from medlabel.server.app import create_app
from medlabel.services import models as models_svc
from medlabel.services.context import Context
from medlabel.services.jobs import run_in_foreground
from medlabel.services.project_engines import (
    PROJECT_MODEL,
    ProjectEngines,
    engine_identity,
)
from medlabel.services.projects import set_member
from medlabel.storage.db.models import ModelVersion
from tests.conftest import PASSWORD
from tests.engines.deep.conftest import _need_train_extra
from tests.jobs.test_train_kind import FAST, World
from tests.services.reader_study import user


# edge cases ------------------------------------------------------------------------------
def test_cache_refuses_a_bound_below_one_model() -> None:
    with pytest.raises(ValueError, match="max_models must be at least 1"):
        ProjectEngines(max_models=0)
    with pytest.raises(ValueError, match="cache_bytes must not be negative"):
        ProjectEngines(cache_bytes=-1)


def test_cache_refuses_a_model_that_is_not_a_segmentation_model(tmp_path: Path) -> None:
    row = ModelVersion(id=7, task="cls", name="kinds", version=1)
    cache = ProjectEngines(tmp_path)
    with pytest.raises(InvalidInputError, match="cls model"):
        cache.get(lambda folder: folder, row)
    assert cache.loads == 0 and not list(tmp_path.iterdir())


def test_a_failed_load_leaves_no_files_and_loads_nothing(tmp_path: Path) -> None:
    row = ModelVersion(id=3, task="seg", name="coins", version=1)
    cache = ProjectEngines(tmp_path)
    with pytest.raises(NotFoundError, match="does not exist"):
        cache.get(lambda folder: folder, row)  # nothing extracted: no model folder
    assert cache.loads == 0 and cache.loaded_ids() == []
    assert not list(tmp_path.iterdir())


def test_engine_identity_names_the_model_and_its_version() -> None:
    assert engine_identity(ModelVersion(name="coins", version=3)) == (
        "project-model:coins",
        "v3",
    )


# over the API ----------------------------------------------------------------------------
@pytest.fixture
def world(ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    _need_train_extra()
    monkeypatch.setenv("MEDLABEL_CACHE", str(tmp_path / "cache"))
    return World(ctx, tmp_path)


@pytest.fixture
def login(ctx: Context, settings: Settings) -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(username: str) -> TestClient:
        client = TestClient(create_app(settings, ctx=ctx), base_url="http://testserver")
        client.__enter__()
        clients.append(client)
        r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def _mask(out: dict[str, Any]) -> np.ndarray:
    raw = gzip.decompress(base64.b64decode(out["mask"]["data"]))
    return np.frombuffer(raw, np.uint8).reshape(out["shape"]).astype(bool)


def _full(out: dict[str, Any], shape: tuple[int, int, int]) -> np.ndarray:
    full = np.zeros(shape, bool)
    (p, r, c), (n0, n1, n2) = out["origin"], out["shape"]
    full[p : p + n0, r : r + n1, c : c + n2] = _mask(out)
    return full


def _box(mask: np.ndarray) -> list[list[int]]:
    rows, cols = np.nonzero(mask)
    return [[0, int(rows.min()), int(cols.min())], [0, int(rows.max()), int(cols.max())]]


def _engines(client: TestClient, project_id: int) -> dict[str, Any]:
    r = client.get("/api/engines", params={"project_id": project_id})
    assert r.status_code == 200, r.text
    return {e["name"]: e for e in r.json()}


def test_no_active_model_is_a_422_naming_the_models_tab(world: World, login: Any) -> None:
    ann = login("ann")
    engine = _engines(ann, world.project_id)[PROJECT_MODEL]
    assert not engine["available"] and "Models tab" in engine["message"]
    image_id = world.image_ids[3]
    body = {"engine": PROJECT_MODEL, "label": "coin", "axis": 0, "index": 0}
    r = ann.post(f"/api/images/{image_id}/proposals", json={**body, "box": _box(world.masks[3])})
    assert r.status_code == 422, r.text
    assert "train one on the Models tab" in r.json()["message"]
    assert world.ctx.project_engines.loads == 0


def test_project_model_ai_box_over_the_api(world: World, login: Any, tmp_path: Path) -> None:
    ctx = world.ctx
    first = run_in_foreground(ctx, world.admin, "train", FAST, project_id=world.project_id)
    assert first.job.state == "succeeded", first.job.error
    v1 = models_svc.get_model(ctx, world.admin, first.job.result["model_id"])
    assert v1.active

    ann = login("ann")
    listed = _engines(ann, world.project_id)[PROJECT_MODEL]
    assert listed["available"] and not listed["loaded"], listed
    assert listed["title"] == f"AI box (project model: {v1.name} v1)"
    assert "box" in listed["required"] and "positive" in listed["prompts"]
    assert {p["name"] for p in listed["params"]} >= {"label", "box_margin", "margin"}
    # without a project: listed, with no model named
    plain = {e["name"]: e for e in ann.get("/api/engines").json()}[PROJECT_MODEL]
    assert plain["available"] and plain["title"] == "AI box (project model)"

    # a box on an image nobody labelled: a mask inside the box, drawn by model v1
    image_id, shape = world.image_ids[3], (1, 40, 40)
    box = _box(world.masks[3])
    body = {"engine": PROJECT_MODEL, "label": "coin", "axis": 0, "index": 0, "box": box}
    r = ann.post(f"/api/images/{image_id}/proposals", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["engine"], out["version"]) == (f"project-model:{v1.name}", "v1")
    assert out["info"]["model_id"] == v1.id and out["info"]["model"] == f"{v1.name} v1"
    assert not out["info"]["cached"]
    full = _full(out, shape)
    (_, r0, c0), (_, r1, c1) = box
    outside = full.copy()
    outside[:, r0 : r1 + 1, c0 : c1 + 1] = False
    assert not outside.any()

    # a positive click refines: the clicked voxel is in the mask; no second inference
    click = [0, (r0 + r1) // 2, (c0 + c1) // 2]
    r = ann.post(f"/api/images/{image_id}/proposals", json={**body, "positive": [click]})
    assert r.status_code == 201, r.text
    refined = r.json()
    assert _full(refined, shape)[tuple(click)]
    assert refined["info"]["cached"] and refined["version"] == "v1"
    cache = ctx.project_engines
    assert cache.loads == 1 and cache.loaded_ids() == [v1.id]
    assert cache.get(lambda folder: folder, v1).inferences == 1  # a hit: nothing extracted
    assert _engines(ann, world.project_id)[PROJECT_MODEL]["loaded"]

    # accepting records the model on the revision
    r = ann.post(
        f"/api/images/{image_id}/proposals/accept",
        json={"ids": [refined["id"]], "base_version": None},
    )
    assert r.status_code == 200, r.text
    head = r.json()["annotation"]["head"]
    assert (head["engine_name"], head["engine_version"]) == (f"project-model:{v1.name}", "v1")

    # a viewer may list engines but not ask for proposals
    vic = user(ctx, "vic", Role.VIEWER)
    set_member(ctx, world.admin, world.project_id, vic.id, ProjectRole.VIEWER)
    viewer = login("vic")
    assert _engines(viewer, world.project_id)[PROJECT_MODEL]["available"]
    assert viewer.post(f"/api/images/{image_id}/proposals", json=body).status_code == 403
    # someone outside the project sees neither
    user(ctx, "out", Role.ANNOTATOR)
    outsider = login("out")
    r = outsider.get("/api/engines", params={"project_id": world.project_id})
    assert r.status_code in (403, 404)

    # a newer version, once activated, draws the next proposals
    second = run_in_foreground(
        ctx, world.admin, "train", {**FAST, "seed": 1}, project_id=world.project_id
    )
    v2 = models_svc.get_model(ctx, world.admin, second.job.result["model_id"])
    r = ann.post(f"/api/images/{image_id}/proposals", json=body)
    assert r.json()["version"] == "v1"  # trained, not active yet
    models_svc.activate_model(ctx, world.admin, v2.id)
    r = ann.post(f"/api/images/{image_id}/proposals", json=body)
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["info"]["model_id"]) == ("v2", v2.id)
    assert cache.loads == 2 and cache.loaded_ids() == [v1.id, v2.id]

    # concurrent first requests for one version load it once
    shared = ProjectEngines(tmp_path / "shared")
    with ThreadPoolExecutor(4) as pool:
        engines = list(
            pool.map(
                lambda _: shared.get(lambda f: models_svc.extract_model(ctx, v1, f), v1),
                range(4),
            )
        )
    assert shared.loads == 1 and all(e is engines[0] for e in engines)
    shared.clear()

    # a cache of one model drops the older one and deletes its files
    small = ProjectEngines(tmp_path / "small", max_models=1)
    for row in (v1, v2):
        small.get(lambda folder, row=row: models_svc.extract_model(ctx, row, folder), row)
    assert small.loaded_ids() == [v2.id] and small.loads == 2
    assert len(list((tmp_path / "small").iterdir())) == 1
    small.clear()
    assert not list((tmp_path / "small").iterdir())
