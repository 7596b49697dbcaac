"""The ``preannotate`` job's active-learning signals with a segmentation model: MC-dropout
uncertainty for a model trained with dropout (``auto``), test-time augmentation for an
old card without it, a refusal of ``mc-dropout`` there before queueing, and the model's
bottleneck features stored as the image score's embedding — on a tiny U-Net trained for
one epoch on real coins crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from medlabel.core.errors import InvalidInputError
from medlabel.services.context import Context
from medlabel.services.jobs import run_in_foreground, submit_job
from medlabel.services.models import register_model
from medlabel.storage.db.models import ImageScore, Proposal
from tests.engines.deep.conftest import _need_train_extra, coins_crops
from tests.engines.deep.signals import old_copy, train_seg
from tests.jobs.test_preannotate_cls_det import ContentWorld


@pytest.fixture
def world(ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ContentWorld:
    _need_train_extra()
    monkeypatch.setenv("MEDLABEL_CACHE", str(tmp_path / "cache"))
    return ContentWorld(ctx, tmp_path)


def _models(world: ContentWorld) -> tuple[int, int, int]:
    """Register the new model and an old copy of it; their ids and bottleneck width."""
    new_dir = train_seg(world.tmp / "seg")
    old_dir = old_copy(new_dir, world.tmp / "seg")
    new = register_model(world.ctx, world.project_id, new_dir, created_by=world.admin.id)
    old = register_model(world.ctx, world.project_id, old_dir, created_by=world.admin.id)
    return new.id, old.id, int(new.card["architecture"]["params"]["filters"][-1])


def _run(world: ContentWorld, params: dict[str, object]) -> dict[str, object]:
    job = run_in_foreground(
        world.ctx, world.ann, "preannotate", params, project_id=world.project_id
    )
    assert job.job.state == "succeeded", job.job.error
    return job.job.result


def test_segmentation_signals(world: ContentWorld) -> None:
    ctx = world.ctx
    new_id, old_id, bottom = _models(world)
    crops = coins_crops(8)
    ids = world.add_images({"seg_a": crops[6][0], "seg_b": crops[7][0]})

    # edge case first: MC dropout of a model without dropout is refused before queueing
    with pytest.raises(InvalidInputError, match="needs a model trained with dropout"):
        submit_job(
            ctx, world.ann, "preannotate", {"model_id": old_id, "uncertainty": "mc-dropout"},
            project_id=world.project_id,
        )  # fmt: skip

    result = _run(world, {"model_id": new_id, "image_ids": ids, "mc_samples": 4})
    assert result["images"] == 2 and not result["failed"]
    with ctx.db.read() as s:
        props = list(s.scalars(select(Proposal).where(Proposal.user_id == world.ann.id)))
        scores = list(s.scalars(select(ImageScore).where(ImageScore.model_id == new_id)))
    assert props, "the model proposed no mask at all"
    for p in props:  # auto: the new model has dropout
        assert p.info["uncertainty_method"] == "mc-dropout"
        assert p.info["uncertainty_samples"] == 4 and p.info["embedding"] == "model-features"
    assert sorted(sc.image_id for sc in scores) == ids
    for sc in scores:
        assert sc.embedding_kind == "model-features" and len(sc.embedding) == 2 * bottom
        assert np.isclose(np.linalg.norm(sc.embedding), 1.0, atol=1e-4)
    assert not np.allclose(scores[0].embedding, scores[1].embedding, atol=1e-4)

    # the old card: test-time augmentation, still the model's features
    _run(world, {"model_id": old_id, "image_ids": ids})
    with ctx.db.read() as s:
        old_props = list(
            s.scalars(
                select(Proposal).where(
                    Proposal.user_id == world.ann.id, Proposal.engine_version == "v2"
                )
            )
        )
        old_scores = list(s.scalars(select(ImageScore).where(ImageScore.model_id == old_id)))
    assert old_props and all(p.info["uncertainty_method"] == "tta" for p in old_props)
    assert all(p.info["uncertainty_samples"] == 3 for p in old_props)
    assert all(sc.embedding_kind == "model-features" for sc in old_scores)
