"""Training classification and detection models on a project's approved labels (the
``train`` job with ``task`` cls/det), then pre-annotating the rest with them and
accepting a proposal: the loop of the Models page for image classes and boxes.

Images are crops of scikit-image's coins and brick photographs (see
:mod:`tests.jobs.test_preannotate_cls_det`); an annotator tags or boxes them and an
admin approves, exactly as in the workspace.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from medlabel.annotation.content import AnnotationContent, Box
from medlabel.core.errors import InvalidInputError
from medlabel.core.settings import Settings
from medlabel.services import annotations as ann_svc
from medlabel.services import models as models_svc
from medlabel.services import proposals as prop_svc
from medlabel.services.access import Principal
from medlabel.services.jobs import run_in_foreground, submit_job
from medlabel.services.model_proposals import box_from_pixels
from medlabel.services.training_data import training_set
from medlabel.storage.db.models import Job, Revision
from tests.engines.deep.conftest import crops
from tests.engines.deep.test_detection import coin_crops
from tests.jobs.test_preannotate_cls_det import ContentWorld, _client, _pending
from tests.jobs.test_preannotate_cls_det import world as world  # the fixture

CLS = {
    "task": "cls",
    "epochs": 2,
    "seed": 3,
    "threads": 1,
    "onnx": False,
    "options": {"width": 4, "baseline": False},
}
DET = {"task": "det", "epochs": 2, "seed": 5, "threads": 1, "onnx": False, "options": {"width": 4}}


def approve(w: ContentWorld, who: Principal, image_id: int, content: AnnotationContent) -> int:
    """Save, submit and approve ``content`` on an image; the approved revision's id."""
    view = ann_svc.save_annotation(w.ctx, who, image_id, content=content, mask=None)
    view = ann_svc.transition(w.ctx, who, view.annotation.id, "submit", view.annotation.version)
    view = ann_svc.transition(
        w.ctx, w.admin, view.annotation.id, "approve", view.annotation.version
    )
    assert view.annotation.approved_revision_id is not None
    return int(view.annotation.approved_revision_id)


def voxel_box(label: str, xyxy: list[int], shape: tuple[int, ...]) -> Box:
    """A box as the workspace saves it, from pixel corners."""
    b = box_from_pixels(label, 1.0, xyxy, shape)
    return Box(label=label, start=b.start, end=b.end)


def tagged(w: ContentWorld, *, per_class: int = 4) -> tuple[list[int], list[int]]:
    """Crops of both photographs imported; ``per_class`` of each approved with its class.
    Returns (approved image ids, unlabelled image ids)."""
    named = {f"{c}_{i}": img for c, items in crops(6).items() for i, img in enumerate(items)}
    w.add_images(named)
    done, rest = [], []
    for name, image_id in sorted(w.images.items()):
        cls, i = name.rsplit("_", 1)
        if int(i) < per_class:
            approve(w, w.ann, image_id, AnnotationContent(classes=[cls]))
            done.append(image_id)
        else:
            rest.append(image_id)
    return done, rest


def test_classification_set_from_approved_classes(world: ContentWorld) -> None:
    done, _ = tagged(world, per_class=2)
    data = training_set(world.ctx, world.project_id, "cls")
    assert data.task.value == "cls" and data.labels == {0: "coins", 1: "brick"}  # schema order
    by_name = {e.name: e for e in data.examples}
    assert sorted(int(n.split("-")[1]) for n in by_name) == sorted(done)
    for name, image_id in world.images.items():
        e = by_name.get(f"image-{image_id}")
        if e is not None:
            assert e.target == (0 if name.startswith("coins") else 1)
            assert e.image.is_2d and e.revision is not None


def test_classification_needs_two_classes_and_single_tags(world: ContentWorld) -> None:
    ctx, pid = world.ctx, world.project_id
    world.add_images({f"coins_{i}": img for i, img in enumerate(crops(3)["coins"])})
    ids = sorted(world.images.values())
    for image_id in ids[:2]:
        approve(world, world.ann, image_id, AnnotationContent(classes=["coins"]))
    with pytest.raises(InvalidInputError, match="at least two classes"):
        training_set(ctx, pid, "cls")
    with pytest.raises(InvalidInputError, match="at least two classification labels"):
        training_set(ctx, pid, "cls", ["coins"])
    with pytest.raises(InvalidInputError, match=r"unknown classification label\(s\) \['coin'\]"):
        submit_job(ctx, world.admin, "train", {**CLS, "labels": ["coin"]}, project_id=pid)
    # an image tagged with both classes is left out, and said so
    approve(world, world.ann, ids[2], AnnotationContent(classes=["coins", "brick"]))
    notes: list[str] = []
    with pytest.raises(InvalidInputError, match="at least two classes"):
        training_set(ctx, pid, "cls", note=notes.append)
    assert any(f"image-{ids[2]} (coins, brick)" in n for n in notes)


def test_train_classifier_preannotate_accept(world: ContentWorld) -> None:
    ctx = world.ctx
    done, rest = tagged(world)
    job = run_in_foreground(ctx, world.admin, "train", CLS, project_id=world.project_id)
    assert job.job.state == "succeeded", job.job.error
    model = models_svc.get_model(ctx, world.admin, job.job.result["model_id"])
    assert (model.task, model.version, model.active) == ("cls", 1, True)
    assert [lab["name"] for lab in model.card["labels"]] == ["coins", "brick"]
    with ctx.db.read() as s:
        approved = {
            r.id for r in s.query(Revision).all() if r.content.get("classes") and r.author_id
        }
    assert set(model.revision_ids) == approved and len(approved) == len(done)

    pre = run_in_foreground(
        ctx,
        world.admin,
        "preannotate",
        {"task": "cls", "for_annotators": True},
        project_id=world.project_id,
    )
    assert pre.job.state == "succeeded", pre.job.error
    assert pre.job.result["images"] == len(rest)
    pending = _pending(ctx, world.ann.id)
    assert {p.image_id for p in pending} == set(rest)
    first = pending[0]
    decision = prop_svc.decide(ctx, world.ann, first.image_id, [first.id], accept=True)
    assert decision.annotation is not None and decision.annotation.head is not None
    head = decision.annotation.head
    assert head.content["classes"] == [first.label] and first.label in ("coins", "brick")
    assert head.engine_name == f"model:{model.name}" and head.source == "engine"


def test_detection_set_converts_boxes_back_to_pixels(world: ContentWorld) -> None:
    items = coin_crops(3)
    ids = world.add_images({f"crop{i}": img for i, (img, _) in enumerate(items)})
    for image_id, (img, boxes) in zip(ids, items, strict=True):
        shape = (1, *img.shape)
        approve(
            world,
            world.ann,
            image_id,
            AnnotationContent(boxes=[voxel_box("coin", b, shape) for b in boxes]),
        )
    data = training_set(world.ctx, world.project_id, "det")
    assert data.labels == {0: "coin"}
    for e, (_, boxes) in zip(data.examples, items, strict=True):
        np.testing.assert_allclose(e.target.boxes, np.asarray(boxes, float), atol=1e-6)
        assert e.target.classes.tolist() == [0] * len(boxes)


def test_train_detector_preannotate_accept(world: ContentWorld, settings: Settings) -> None:
    ctx = world.ctx
    items = coin_crops(6)
    ids = world.add_images({f"crop{i}": img for i, (img, _) in enumerate(items)})
    for image_id, (img, boxes) in list(zip(ids, items, strict=True))[:4]:
        shape = (1, *img.shape)
        content = AnnotationContent(boxes=[voxel_box("coin", b, shape) for b in boxes])
        approve(world, world.ann, image_id, content)

    # through the API, as the Models page starts it
    with _client(ctx, settings, "admin") as client:
        r = client.post(
            f"/api/projects/{world.project_id}/jobs", json={"kind": "train", "params": DET}
        )
        assert r.status_code == 201, r.text
        job = _wait(client, r.json()["id"])
    assert job["state"] == "succeeded", job.get("error")
    model = models_svc.get_model(ctx, world.admin, job["result"]["model_id"])
    assert model.task == "det" and [lab["name"] for lab in model.card["labels"]] == ["coin"]

    pre = run_in_foreground(
        ctx,
        world.ann,
        "preannotate",
        {"task": "det", "min_score": 0.0, "image_ids": ids[4:]},
        project_id=world.project_id,
    )
    assert pre.job.state == "succeeded", pre.job.error
    pending = _pending(ctx, world.ann.id)
    assert pending and {p.image_id for p in pending} <= set(ids[4:])
    first = pending[0]
    decision = prop_svc.decide(ctx, world.ann, first.image_id, [first.id], accept=True)
    assert decision.annotation is not None and decision.annotation.head is not None
    boxes = decision.annotation.head.content["boxes"]
    assert [b["label"] for b in boxes] == ["coin"] and decision.annotation.head.source == "engine"


def test_bad_task_is_a_clear_422(world: ContentWorld, settings: Settings) -> None:
    with _client(world.ctx, settings, "admin") as client:
        url = f"/api/projects/{world.project_id}/jobs"
        r = client.post(url, json={"kind": "train", "params": {"task": "regression"}})
        assert r.status_code == 422 and "task" in r.text
        r = client.post(url, json={"kind": "train", "params": {"task": "det"}})
        assert r.status_code == 422 and "approved boxes" in r.text, r.text


def test_bad_folds_are_a_clear_422(world: ContentWorld, settings: Settings) -> None:
    tagged(world, per_class=2)
    with _client(world.ctx, settings, "admin") as client:
        url = f"/api/projects/{world.project_id}/jobs"

        def post(task: str, folds: Any) -> Any:
            params = {"task": task, "options": {"folds": folds}}
            return client.post(url, json={"kind": "train", "params": params})

        for folds, needle in (
            (0, "to 10, got"),
            (11, "to 10, got"),
            ("3", "to 10, got"),
            (True, "to 10, got"),
            (5, "5 folds need at least 5 approved images; this project has 4"),
        ):
            r = post("cls", folds)
            assert r.status_code == 422 and needle in r.text, (folds, r.text)
        r = post("det", 2)
        assert r.status_code == 422 and "approved boxes" in r.text  # no boxes here
    with world.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0  # nothing queued


def _wait(client: TestClient, job_id: int, seconds: float = 300) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {seconds} s")
