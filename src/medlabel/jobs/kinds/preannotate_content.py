"""The ``preannotate`` job for classification and detection models: their proposals are
classes and boxes (see :mod:`medlabel.services.model_proposals`), one image at a time
with the model loaded once. :mod:`medlabel.jobs.kinds.preannotate` hands over here after
choosing the model, the images and the recipients."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlabel.core.errors import InvalidInputError
from medlabel.jobs.reporter import Reporter
from medlabel.jobs.spec import JobEnv
from medlabel.services.context import Context
from medlabel.storage.db.models import Image, ModelVersion

if TYPE_CHECKING:
    from medlabel.jobs.kinds.preannotate import PreannotateParams


def _class_names(row: ModelVersion) -> list[str]:
    return [str(lab["name"]) for lab in row.card.get("labels", [])]


def check_labels(ctx: Context, project_id: int, row: ModelVersion) -> None:
    """Refuse (before queueing) a model whose classes are not labels of the project of
    the kind its proposals need."""
    from medlabel.services.model_proposals import check_model_labels

    with ctx.db.read() as s:
        check_model_labels(s, project_id, row.task, _class_names(row))


def run_content_task(
    env: JobEnv,
    params: PreannotateParams,
    reporter: Reporter,
    row: ModelVersion,
    users: Sequence[int],
    ids: Sequence[int],
) -> dict[str, Any]:
    """Pre-annotate ``ids`` with a classification or detection model for ``users``."""
    from medlabel.engines.deep.model_dir import ModelCard
    from medlabel.engines.deep.tasks import get_task
    from medlabel.jobs.kinds.preannotate_cls import predict_classes
    from medlabel.jobs.kinds.preannotate_det import predict_boxes
    from medlabel.services.learning import image_volume
    from medlabel.services.model_proposals import store_classification, store_detection
    from medlabel.services.models import extract_model

    ctx = env.ctx
    check_labels(ctx, env.project_id, row)  # labels may have changed since it was queued
    reporter.log(
        f"{row.task} model {row.name} v{row.version} on {len(ids)} image(s), "
        f"for {len(users)} user(s)"
    )
    proposals: list[int] = []
    scores: dict[str, float] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="medlabel-model-") as tmp:
        directory = extract_model(ctx, row, Path(tmp) / "model")
        card = ModelCard.read(directory)
        model = get_task(card.task).load(directory, card, backend=params.backend)
        for n, image_id in enumerate(ids, 1):
            reporter.check_cancelled()
            with ctx.db.read() as s:
                image = s.get(Image, image_id)
            if image is None:
                continue
            volume = image_volume(ctx, image)
            if not volume.is_2d:
                failed.append(f"image {image_id}: {row.task} models take 2D images")
                reporter.log(failed[-1], "warning")
                continue
            try:
                if row.task == "cls":
                    result = predict_classes(
                        model,
                        volume,
                        image_id,
                        method=params.uncertainty,
                        samples=params.mc_samples,
                    )
                    proposals += store_classification(ctx, row, users, result)
                    scores[str(image_id)] = round(result.uncertainty, 4)
                else:
                    boxes = predict_boxes(model, volume, image_id, min_score=params.min_score)
                    proposals += store_detection(ctx, row, users, boxes)
                    scores[str(image_id)] = round(boxes.uncertainty, 4)
            except InvalidInputError as exc:  # an image the model cannot take
                failed.append(f"image {image_id}: {exc.message}")
                reporter.log(failed[-1], "warning")
                continue
            reporter.progress(n, len(ids), "pre-annotating")
    reporter.log(f"{len(proposals)} proposal(s) on {len(scores)} image(s)")
    return {
        "model_id": row.id,
        "task": row.task,
        "images": len(scores),
        "proposals": len(proposals),
        "failed": failed[:20],
        "uncertainty": scores if len(scores) <= 200 else {},
    }
