"""Pre-annotation with classification and detection models on a tiny real project:
class proposals with probabilities and a saliency map, box proposals with scores, accept
(an engine revision of classes or boxes) and reject (nothing stored), and the API's
maps and refusals.

Images are crops of scikit-image's coins and brick photographs; the models are trained
for two short epochs (seconds) with the task trainers, then registered as versions of
the project.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import select

from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.core.errors import InvalidInputError
from medlabel.core.settings import Settings
from medlabel.engines.deep.model_dir import TrainingConfig
from medlabel.io.png import write_png
from medlabel.security.roles import ProjectRole, Role
from medlabel.server.app import create_app
from medlabel.services import annotations as ann_svc
from medlabel.services import proposals as prop_svc
from medlabel.services.context import Context
from medlabel.services.imports import import_paths
from medlabel.services.jobs import run_in_foreground, submit_job
from medlabel.services.model_proposals import (
    box_from_pixels,
    detection_uncertainty,
    normalised_entropy,
    proposal_saliency,
)
from medlabel.services.models import register_model
from medlabel.services.projects import add_labels, create_project, set_member
from medlabel.storage.db.models import Annotation, Image, ImageScore, Proposal
from tests.conftest import PASSWORD
from tests.engines.deep.conftest import _need_train_extra
from tests.engines.deep.test_classification import crops
from tests.engines.deep.test_detection import coin_crops
from tests.services.reader_study import user

CLS_CONFIG = {
    "seed": 3,
    "epochs": 2,
    "threads": 1,
    "batch_size": 8,
    "onnx": False,
    "val_fraction": 0.34,
    "options": {"width": 4, "baseline": False},
}
DET_CONFIG = {
    "seed": 5,
    "epochs": 2,
    "threads": 1,
    "batch_size": 3,
    "onnx": False,
    "val_fraction": 0.34,
    "options": {"width": 4},
}


class ContentWorld:
    """A project with classification labels ``coins``/``brick``, a box label ``coin``, a
    mask label, and images of both photographs; an admin and an annotator."""

    def __init__(self, ctx: Context, tmp: Path) -> None:
        self.ctx = ctx
        self.tmp = tmp
        self.admin = user(ctx, "admin", Role.ADMIN)
        self.ann = user(ctx, "ann", Role.ANNOTATOR)
        project = create_project(ctx, self.admin, "Textures")
        self.project_id = project.id
        set_member(ctx, self.admin, project.id, self.ann.id, ProjectRole.ANNOTATOR)
        add_labels(
            ctx,
            self.admin,
            project.id,
            [
                LabelSpec(name="coins", kind=LabelKind.CLASSIFICATION),
                LabelSpec(name="brick", kind=LabelKind.CLASSIFICATION),
                LabelSpec(name="coin", kind=LabelKind.BOX),
                LabelSpec(name="foreground", kind=LabelKind.MASK, value=1),
            ],
        )
        self.images: dict[str, int] = {}

    def add_images(self, named: dict[str, np.ndarray]) -> list[int]:
        folder = self.tmp / f"import{len(self.images)}"
        folder.mkdir()
        paths = []
        for name, arr in named.items():
            p = folder / f"{name}.png"
            p.write_bytes(write_png(arr))
            paths.append(p)
        ids = import_paths(self.ctx, None, self.project_id, paths).image_ids
        with self.ctx.db.read() as s:
            rows = list(s.scalars(select(Image).where(Image.id.in_(ids))))
        for r in rows:
            self.images[Path(r.name).stem] = r.id
        return sorted(self.images[n] for n in named)

    def train_cls(self) -> int:
        """Train the classifier on crops of both photographs; its model id."""
        from medlabel.engines.deep.tasks import FolderSource, get_task

        folder = self.tmp / "cls-train"
        folder.mkdir()
        rows = [("image", "label")]
        for name, items in crops().items():
            for i, img in enumerate(items):
                PILImage.fromarray(img).save(folder / f"{name}_{i}.png")
                rows.append((f"{name}_{i}.png", name))
        with open(self.tmp / "cls.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(rows)
        task = get_task("cls")
        data = task.dataset_from_folder(FolderSource(images=folder, labels=self.tmp / "cls.csv"))
        return self._register(task, data, CLS_CONFIG, "cls")

    def train_det(self) -> int:
        from medlabel.engines.deep.tasks import FolderSource, get_task

        folder = self.tmp / "det-train"
        folder.mkdir()
        records = {}
        for i, (img, boxes) in enumerate(coin_crops()):
            PILImage.fromarray(img).save(folder / f"crop{i}.png")
            records[f"crop{i}"] = {
                "height": img.shape[0],
                "width": img.shape[1],
                "bbox": [
                    {"label": "coin", "xmin": a, "ymin": b, "xmax": c, "ymax": d}
                    for a, b, c, d in boxes
                ],
            }
        (self.tmp / "boxes.json").write_text(json.dumps(records))
        task = get_task("det")
        data = task.dataset_from_folder(FolderSource(images=folder, labels=self.tmp / "boxes.json"))
        return self._register(task, data, DET_CONFIG, "det")

    def _register(self, task: Any, data: Any, config: dict[str, Any], name: str) -> int:
        from medlabel.engines.deep.tasks import LoggingReporter

        trained = task.train(data, TrainingConfig(**config), LoggingReporter())
        directory = self.tmp / f"model-{name}"
        trained.save(directory)
        row = register_model(self.ctx, self.project_id, directory, created_by=self.admin.id)
        return row.id


@pytest.fixture
def world(ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ContentWorld:
    _need_train_extra()
    monkeypatch.setenv("MEDLABEL_CACHE", str(tmp_path / "cache"))
    return ContentWorld(ctx, tmp_path)


def _pending(ctx: Context, user_id: int, **where: Any) -> list[Proposal]:
    with ctx.db.read() as s:
        stmt = select(Proposal).where(Proposal.user_id == user_id, Proposal.state == "pending")
        for k, v in where.items():
            stmt = stmt.where(getattr(Proposal, k) == v)
        return list(s.scalars(stmt.order_by(Proposal.id)))


def _client(ctx: Context, settings: Settings, username: str) -> TestClient:
    client = TestClient(create_app(settings, ctx=ctx), base_url="http://testserver")
    r = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client


# edge cases first --------------------------------------------------------------------------
def test_scores_of_edge_cases() -> None:
    assert normalised_entropy([1.0, 0.0, 0.0]) == 0.0
    assert normalised_entropy([0.5, 0.5]) == pytest.approx(1.0)
    assert 0.0 < normalised_entropy([0.9, 0.1]) < 1.0
    with pytest.raises(ValueError, match="at least 2"):
        normalised_entropy([1.0])
    with pytest.raises(ValueError, match="non-negative"):
        normalised_entropy([0.0, 0.0])
    assert detection_uncertainty([]) == 0.0
    assert detection_uncertainty([0.5, 0.5]) == pytest.approx(1.0)
    assert detection_uncertainty([0.99, 0.01]) < 0.1


def test_boxes_are_clipped_to_the_image() -> None:
    box = box_from_pixels("coin", 0.7, [-5, 2, 200, 8], (1, 10, 20))
    assert box.start == (-0.5, 1.5, -0.5) and box.end == (0.5, 7.5, 19.5)
    flat = box_from_pixels("coin", 0.7, [20, 10, 20, 10], (1, 10, 20))
    assert all(a < b for a, b in zip(flat.start, flat.end, strict=True))


def test_models_whose_classes_are_not_labels_are_refused(world: ContentWorld) -> None:
    with pytest.raises(InvalidInputError, match="no active classification model"):
        submit_job(
            world.ctx, world.ann, "preannotate", {"task": "cls"}, project_id=world.project_id
        )
    model_id = world.train_det()
    with world.ctx.db.write() as s:  # the box label becomes a point label
        from medlabel.storage.db.models import Label

        lab = s.scalar(select(Label).where(Label.name == "coin"))
        assert lab is not None
        lab.kind = LabelKind.POINT.value
    with pytest.raises(InvalidInputError, match=r"\['coin'\] are not box labels"):
        submit_job(
            world.ctx, world.ann, "preannotate", {"model_id": model_id}, project_id=world.project_id
        )


# classification ----------------------------------------------------------------------------
def test_classification_preannotate_accept_reject(world: ContentWorld, settings: Settings) -> None:
    ctx = world.ctx
    model_id = world.train_cls()
    samples = crops(8)
    ids = world.add_images({"coins_new": samples["coins"][7], "brick_new": samples["brick"][7]})
    job = run_in_foreground(
        ctx, world.ann, "preannotate", {"task": "cls"}, project_id=world.project_id
    )
    assert job.job.state == "succeeded", job.job.error
    assert job.job.result["task"] == "cls" and job.job.result["images"] == 2
    assert job.job.result["proposals"] == 2

    rows = _pending(ctx, world.ann.id)
    assert sorted(p.image_id for p in rows) == ids
    for p in rows:
        info = p.info
        assert info["task"] == "cls" and info["model_id"] == model_id
        probs = info["probabilities"]
        assert set(probs) == {"coins", "brick"}
        assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-4)
        assert p.label == max(probs, key=probs.__getitem__)
        assert info["confidence"] == pytest.approx(max(probs.values()), abs=1e-4)
        assert info["uncertainty"] == pytest.approx(
            normalised_entropy(list(probs.values())), abs=1e-4
        )
        assert info["saliency_method"] == "gradcam" and p.voxels == 0
        heat = proposal_saliency(ctx, p)
        assert heat.shape == (1, 24, 24) and heat.dtype == np.uint8 and heat.max() > 0
        assert list(p.shape) == [1, 24, 24]
    with ctx.db.read() as s:
        scores = list(s.scalars(select(ImageScore).where(ImageScore.model_id == model_id)))
    assert sorted(sc.image_id for sc in scores) == ids
    # the CNN's penultimate layer (width 4: 32 channels), unit length
    assert all(0.0 <= sc.uncertainty <= 1.0 and len(sc.embedding) == 32 for sc in scores)
    assert all(sc.embedding_kind == "model-features" for sc in scores)
    assert all(np.isclose(np.linalg.norm(sc.embedding), 1.0, atol=1e-4) for sc in scores)
    for p in rows:  # the CNN has dropout: MC dropout by default, recorded
        assert p.info["uncertainty_method"] == "mc-dropout"
        assert p.info["uncertainty_samples"] == 8 and p.info["embedding"] == "model-features"

    accepted, rejected = rows
    with _client(ctx, settings, "ann") as api:
        r = api.get(f"/api/proposals/{accepted.id}/saliency")
        assert r.status_code == 200, r.text
        assert r.headers["X-Mask-Shape"] == "1,24,24" and r.headers["X-Saliency-Scale"] == "255"
        assert api.get(f"/api/proposals/{accepted.id}/uncertainty").status_code == 422
        assert api.get("/api/proposals/999999/saliency").status_code == 404
        r = api.post(
            f"/api/images/{accepted.image_id}/proposals/accept",
            json={"ids": [accepted.id], "mode": "replace"},
        )
        assert r.status_code == 200, r.text
        annotation = r.json()["annotation"]
        r = api.get(f"/api/images/{accepted.image_id}/annotations")
        assert r.status_code == 200
        mine = next(a for a in r.json() if a["id"] == annotation["id"])
        r = api.post(
            f"/api/images/{rejected.image_id}/proposals/reject", json={"ids": [rejected.id]}
        )
        assert r.status_code == 200 and r.json()["rejected"] == [rejected.id]
        # decided once only
        r = api.post(
            f"/api/images/{rejected.image_id}/proposals/reject", json={"ids": [rejected.id]}
        )
        assert r.status_code == 409
    assert mine["head"]["content"]["classes"] == [accepted.label]
    view = ann_svc.get_annotation(ctx, world.ann, annotation["id"])
    assert view.head is not None
    assert (view.head.source, view.head.engine_name, view.head.engine_version) == (
        "engine",
        accepted.engine_name,
        accepted.engine_version,
    )
    assert view.head.prompt is not None and view.head.prompt["proposals"] == [accepted.id]
    assert view.head.mask_digest is None
    with ctx.db.read() as s:
        anns = list(s.scalars(select(Annotation).where(Annotation.image_id == rejected.image_id)))
        again = s.get(Proposal, rejected.id)
    assert anns == [] and again is not None and again.state == "rejected"
    assert again.revision_id is None

    # re-running replaces pending proposals only; accepting the other class with
    # "replace" swaps the class
    job = run_in_foreground(
        ctx, world.ann, "preannotate", {"model_id": model_id, "image_ids": [accepted.image_id]},
        project_id=world.project_id,
    )  # fmt: skip
    assert job.job.state == "succeeded", job.job.error
    fresh = _pending(ctx, world.ann.id, image_id=accepted.image_id)
    assert len(fresh) == 1
    with ctx.db.write() as s:  # pretend the model now says the other class
        row = s.get(Proposal, fresh[0].id)
        assert row is not None
        row.label = "brick" if accepted.label == "coins" else "coins"
    decision = prop_svc.decide(
        ctx, world.ann, accepted.image_id, [fresh[0].id], accept=True,
        base_version=annotation["version"], mode="replace",
    )  # fmt: skip
    assert decision.annotation is not None and decision.annotation.head is not None
    assert decision.annotation.head.content["classes"] == [
        "brick" if accepted.label == "coins" else "coins"
    ]


# detection ---------------------------------------------------------------------------------
def test_detection_preannotate_accept(world: ContentWorld, settings: Settings) -> None:
    ctx = world.ctx
    model_id = world.train_det()
    (img, _), *_ = coin_crops(8)[7:]
    ids = world.add_images({"coins_boxes": img})
    job = run_in_foreground(
        ctx, world.ann, "preannotate", {"task": "det", "min_score": 0.0},
        project_id=world.project_id,
    )  # fmt: skip
    assert job.job.state == "succeeded", job.job.error
    assert job.job.result["task"] == "det" and job.job.result["images"] == 1
    rows = _pending(ctx, world.ann.id)
    assert rows, "the detector returned no box at all (its own threshold is 0.05)"
    scores = [p.info["confidence"] for p in rows]
    for p in rows:
        assert p.image_id == ids[0] and p.label == "coin" and p.info["task"] == "det"
        start, end = p.info["box"]["start"], p.info["box"]["end"]
        assert start[0] == -0.5 and end[0] == 0.5
        assert all(
            -0.5 <= a < b <= n - 0.5 for a, b, n in zip(start, end, (1, 64, 96), strict=True)
        )
        assert p.info["uncertainty"] == pytest.approx(detection_uncertainty(scores), abs=1e-3)
        assert p.uncertainty_digest is None
    with _client(ctx, settings, "ann") as api:
        assert api.get(f"/api/proposals/{rows[0].id}/saliency").status_code == 422
        assert api.get(f"/api/proposals/{rows[0].id}/uncertainty").status_code == 422
        # box and class proposals are accepted separately from masks; boxes of one image together
        r = api.post(
            f"/api/images/{ids[0]}/proposals/accept", json={"ids": [p.id for p in rows[:2]]}
        )
        assert r.status_code == 200, r.text
        content = r.json()["annotation"]["head"]["content"]
    boxes = content["boxes"]
    assert [b["label"] for b in boxes] == ["coin"] * len(rows[:2])
    assert [b["start"] for b in boxes] == [p.info["box"]["start"] for p in rows[:2]]
    assert all(b["start_mm"] is not None for b in boxes)
    with ctx.db.read() as s:
        score = s.scalar(select(ImageScore).where(ImageScore.model_id == model_id))
    assert score is not None and score.foreground == len(rows)
    # the detector's pooled stride-16 features (width 4: 32 channels, mean and max)
    assert score.embedding_kind == "model-features" and len(score.embedding) == 64
    assert all(p.info["embedding"] == "model-features" for p in rows)

    # a higher threshold proposes fewer boxes; the uncertainty still counts them all
    job = run_in_foreground(
        ctx, world.ann, "preannotate", {"task": "det", "min_score": 1.0, "image_ids": ids},
        project_id=world.project_id,
    )  # fmt: skip
    assert job.job.state == "succeeded"
    assert job.job.result["proposals"] == 0
    assert job.job.result["uncertainty"][str(ids[0])] == pytest.approx(
        rows[0].info["uncertainty"], abs=1e-3
    )


def test_mixed_tasks_are_accepted_separately(ctx: Context) -> None:
    from medlabel.services.model_proposals import merge_content

    cls = Proposal(label="coins", info={"task": "cls", "probabilities": {"coins": 1.0}})
    seg = Proposal(label="foreground", info={"confidence": 0.9})
    with ctx.db.read() as s:
        image = Image(project_id=1, shape=[1, 4, 4], affine=np.eye(4).tolist())
        with pytest.raises(InvalidInputError, match="separately; these mix cls, seg"):
            merge_content(s, image, None, [cls, seg], replace=False)
