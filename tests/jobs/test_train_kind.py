"""The learning loop on a tiny real project: train on approved labels, register the model,
pre-annotate the rest, accept a proposal.

Images are crops of scikit-image's coins photograph (PNG) with Otsu masks as the readers'
labels; training is one short epoch of a small U-Net.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.core.errors import InvalidInputError
from medlabel.io.png import write_png
from medlabel.security.roles import ProjectRole, Role
from medlabel.services import annotations as ann_svc
from medlabel.services import models as models_svc
from medlabel.services import proposals as prop_svc
from medlabel.services.access import Principal
from medlabel.services.context import Context
from medlabel.services.imports import import_paths
from medlabel.services.jobs import run_in_foreground, submit_job
from medlabel.services.learning import proposal_uncertainty
from medlabel.services.projects import add_labels, create_project, set_member
from medlabel.storage.db.models import Image, ImageScore, Proposal
from tests.engines.deep.conftest import _need_train_extra, coins_crops
from tests.services.reader_study import user

#: a small, fast network: one short epoch
FAST = {
    "task": "seg",
    "epochs": 1,
    "arch": "dynunet",
    "onnx": False,
    "threads": 1,
    "options": {"samples_per_epoch": 4, "base_filters": 4},
}


class World:
    def __init__(self, ctx: Context, tmp: Path, *, labelled: int = 3, images: int = 5) -> None:
        self.ctx = ctx
        self.admin = user(ctx, "admin", Role.ADMIN)
        self.ann = user(ctx, "ann", Role.ANNOTATOR)
        project = create_project(ctx, self.admin, "Coins")
        self.project_id = project.id
        set_member(ctx, self.admin, project.id, self.ann.id, ProjectRole.ANNOTATOR)
        add_labels(
            ctx, self.admin, project.id, [LabelSpec(name="coin", kind=LabelKind.MASK, value=1)]
        )
        pairs = coins_crops(images, side=40)
        paths = []
        for i, (img, _) in enumerate(pairs):
            p = tmp / f"coin_{i}.png"
            p.write_bytes(write_png(img))
            paths.append(p)
        ids = import_paths(ctx, None, project.id, paths).image_ids
        with ctx.db.read() as s:
            names = {i.id: i.name for i in s.scalars(select(Image).where(Image.id.in_(ids)))}
        self.image_ids = sorted(ids, key=lambda i: names[i])
        self.masks = [m for _, m in pairs]
        for i in range(labelled):
            self.approve(self.ann, self.image_ids[i], self.masks[i])

    def approve(self, who: Principal, image_id: int, mask: np.ndarray) -> None:
        view = ann_svc.save_annotation(
            self.ctx,
            who,
            image_id,
            content=AnnotationContent(),
            mask=mask[np.newaxis].astype(np.uint8),
        )
        view = ann_svc.transition(
            self.ctx, who, view.annotation.id, "submit", view.annotation.version
        )
        ann_svc.transition(
            self.ctx, self.admin, view.annotation.id, "approve", view.annotation.version
        )


@pytest.fixture
def world(ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    _need_train_extra()
    monkeypatch.setenv("MEDLABEL_CACHE", str(tmp_path / "cache"))
    return World(ctx, tmp_path)


def test_train_refuses_fewer_than_two_labelled_images(ctx: Context, tmp_path: Path) -> None:
    _need_train_extra()
    w = World(ctx, tmp_path, labelled=1, images=2)
    with pytest.raises(InvalidInputError, match="at least 2"):
        submit_job(ctx, w.admin, "train", FAST, project_id=w.project_id)
    with pytest.raises(InvalidInputError, match="unknown mask label"):
        submit_job(ctx, w.admin, "train", {**FAST, "labels": ["tumour"]}, project_id=w.project_id)


def test_preannotate_needs_a_model(world: World) -> None:
    with pytest.raises(InvalidInputError, match="no active segmentation model"):
        submit_job(world.ctx, world.ann, "preannotate", {}, project_id=world.project_id)


def test_train_preannotate_accept(world: World) -> None:
    ctx = world.ctx
    job = run_in_foreground(ctx, world.admin, "train", FAST, project_id=world.project_id)
    assert job.job.state == "succeeded", job.job.error
    model_id = job.job.result["model_id"]

    model = models_svc.get_model(ctx, world.admin, model_id)
    assert (model.task, model.version, model.active) == ("seg", 1, True)  # first: active
    assert model.job_id == job.job.id
    assert model.size_bytes > 0 and model.card["task"] == "seg"
    with ctx.db.read() as s:
        from medlabel.services.review import reference_revisions

        used = sorted(reference_revisions(s, i).revisions[0].id for i in world.image_ids[:3])
    assert model.revision_ids == used
    assert {d["name"] for d in model.card["data"]["train"] + model.card["data"]["val"]} == {
        f"image-{i}" for i in world.image_ids[:3]
    }

    # a second version is not active unless asked; activating moves the flag
    job2 = run_in_foreground(
        ctx, world.admin, "train", {**FAST, "seed": 1}, project_id=world.project_id
    )
    second = models_svc.get_model(ctx, world.admin, job2.job.result["model_id"])
    assert (second.version, second.active) == (2, False)
    models_svc.activate_model(ctx, world.admin, second.id)
    rows = models_svc.list_models(ctx, world.admin, world.project_id)
    assert [(r.version, r.active) for r in rows] == [(2, True), (1, False)]
    models_svc.activate_model(ctx, world.admin, model_id)

    # the admin pre-annotates the two unlabelled images for the team
    pre = run_in_foreground(
        ctx, world.admin, "preannotate", {"for_annotators": True}, project_id=world.project_id
    )
    assert pre.job.state == "succeeded", pre.job.error
    assert pre.job.result["model_id"] == model_id and pre.job.result["images"] == 2
    with ctx.db.read() as s:
        scores = list(s.scalars(select(ImageScore).where(ImageScore.model_id == model_id)))
        rows_p = list(s.scalars(select(Proposal).where(Proposal.user_id == world.ann.id)))
        admins = list(s.scalars(select(Proposal).where(Proposal.user_id == world.admin.id)))
    assert sorted(sc.image_id for sc in scores) == world.image_ids[3:]
    assert all(0.0 <= sc.uncertainty <= 1.0 for sc in scores)
    assert {sc.embedding_kind for sc in scores} == {"model-features"}
    assert len({len(sc.embedding) for sc in scores}) == 1  # one fixed length
    assert rows_p, "the model proposed nothing on two images of coins"
    assert [(p.image_id, p.label, p.mask_digest) for p in admins] == [
        (p.image_id, p.label, p.mask_digest) for p in rows_p
    ]
    for p in rows_p:
        assert p.engine_name == f"model:{model.name}" and p.engine_version == "v1"
        assert 0.0 < p.info["confidence"] <= 1.0 and 0.0 <= p.info["uncertainty"] <= 1.0
        unc = proposal_uncertainty(ctx, p)
        assert list(unc.shape) == list(p.shape) and unc.dtype == np.uint8
    # only reviewers pre-annotate for others
    refused = run_in_foreground(
        ctx, world.ann, "preannotate", {"for_annotators": True}, project_id=world.project_id
    )
    assert refused.job.state == "failed" and "reviewers" in (refused.job.error or "")

    # the annotator finds them later and accepts one
    target = rows_p[0]
    pending = prop_svc.list_proposals(ctx, world.ann, target.image_id, state="pending")
    assert [p.id for p in pending] == [p.id for p in rows_p if p.image_id == target.image_id]
    decision = prop_svc.decide(ctx, world.ann, target.image_id, [target.id], accept=True)
    assert decision.annotation is not None
    head = decision.annotation.head
    assert head is not None
    assert (head.source, head.engine_name, head.engine_version) == (
        "engine",
        f"model:{model.name}",
        "v1",
    )

    # re-running replaces the pending proposals of the same version (no duplicates)
    again = run_in_foreground(ctx, world.ann, "preannotate", {}, project_id=world.project_id)
    assert again.job.state == "succeeded"
    with ctx.db.read() as s:
        pend = list(
            s.scalars(
                select(Proposal).where(
                    Proposal.user_id == world.ann.id, Proposal.state == "pending"
                )
            )
        )
    per_image_label = [(p.image_id, p.label) for p in pend]
    assert len(per_image_label) == len(set(per_image_label))


@pytest.mark.slow
def test_default_2d_model_preannotates(world: World) -> None:
    """``arch: auto`` on 2D images picks the LiteMedSAM decoder: its probabilities and
    uncertainty come through the same path."""
    ctx = world.ctx
    params = {"epochs": 1, "onnx": False, "threads": 1, "options": {"samples_per_epoch": 4}}
    job = run_in_foreground(ctx, world.admin, "train", params, project_id=world.project_id)
    assert job.job.state == "succeeded", job.job.error
    model = models_svc.get_model(ctx, world.admin, job.job.result["model_id"])
    pre = run_in_foreground(
        ctx, world.ann, "preannotate", {"model_id": model.id}, project_id=world.project_id
    )
    assert pre.job.state == "succeeded", pre.job.error
    assert pre.job.result["images"] == 2 and not pre.job.result["failed"]
    with ctx.db.read() as s:
        scores = list(s.scalars(select(ImageScore).where(ImageScore.model_id == model.id)))
    assert len(scores) == 2 and all(0.0 <= sc.uncertainty <= 1.0 for sc in scores)


def test_mixed_images_train_on_the_largest_group(ctx: Context, tmp_path: Path) -> None:
    import shutil

    import nibabel.testing

    from medlabel.services.training_data import training_set

    _need_train_extra()
    w = World(ctx, tmp_path, labelled=2, images=2)
    src = Path(nibabel.testing.data_path) / "anatomical.nii"
    shutil.copy(src, tmp_path / "anatomical.nii")
    (vol_id,) = import_paths(ctx, None, w.project_id, [tmp_path / "anatomical.nii"]).image_ids
    with ctx.db.read() as s:
        image = s.get(Image, vol_id)
        assert image is not None
        shape = tuple(int(n) for n in image.shape[:3])
    mask = np.zeros(shape, np.uint8)
    mask[1:3, 5:15, 5:15] = 1
    view = ann_svc.save_annotation(ctx, w.ann, vol_id, content=AnnotationContent(), mask=mask)
    view = ann_svc.transition(ctx, w.ann, view.annotation.id, "submit", view.annotation.version)
    ann_svc.transition(ctx, w.admin, view.annotation.id, "approve", view.annotation.version)
    notes: list[str] = []
    data = training_set(ctx, w.project_id, note=notes.append)
    assert sorted(e.name for e in data.examples) == sorted(f"image-{i}" for i in w.image_ids)
    assert len(notes) == 1 and f"image-{vol_id}" in notes[0] and "2D greyscale" in notes[0]
