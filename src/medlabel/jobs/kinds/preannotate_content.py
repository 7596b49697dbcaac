"""The ``preannotate`` job for classification and detection models: their proposals are
classes and boxes (see :mod:`medlabel.services.model_proposals`).
:mod:`medlabel.jobs.kinds.preannotate` hands over here after choosing the model, the
images and the recipients.

As for segmentation (:mod:`medlabel.jobs.kinds.preannotate_seg_batch`), the model runs a
batch of images at a time through :meth:`medlabel.jobs.spec.JobEnv.map_batches`:
:class:`ContentPredictor` loads it once per worker (a thread of the job, or a Ray actor
on a cluster) and returns one result per image; this process stores them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep.mc_dropout import DEFAULT_MC_SAMPLES
from medlabel.jobs.reporter import Reporter
from medlabel.jobs.spec import JobEnv
from medlabel.services.context import Context
from medlabel.storage.db.models import Image, ModelVersion

if TYPE_CHECKING:
    from medlabel.jobs.kinds.preannotate import PreannotateParams
    from medlabel.services.model_proposals import BoxResult, ClassResult


def _class_names(row: ModelVersion) -> list[str]:
    return [str(lab["name"]) for lab in row.card.get("labels", [])]


def check_labels(ctx: Context, project_id: int, row: ModelVersion) -> None:
    """Refuse (before queueing) a model whose classes are not labels of the project of
    the kind its proposals need."""
    from medlabel.services.model_proposals import check_model_labels

    with ctx.db.read() as s:
        check_model_labels(s, project_id, row.task, _class_names(row))


@dataclass(frozen=True)
class ContentPredictor:
    """A worker factory: ``ContentPredictor(model_id, ...)(ctx)`` loads a classification
    or detection model; the result maps a batch of image ids to one outcome each
    (picklable, so Ray actors can build it)."""

    model_id: int
    backend: str = "auto"
    #: classification: ``auto``, ``tta``, ``mc-dropout`` or ``tta+mc-dropout``
    uncertainty: str = "auto"
    mc_samples: int = DEFAULT_MC_SAMPLES
    #: detection: boxes scoring at least this become proposals
    min_score: float = 0.3

    def __call__(self, ctx: Context) -> LoadedContentModel:
        return LoadedContentModel(ctx, self)


class LoadedContentModel:
    """One worker's loaded classification or detection model (its files in a temporary
    folder until :meth:`close`)."""

    def __init__(self, ctx: Context, spec: ContentPredictor) -> None:
        from medlabel.jobs.kinds.preannotate_seg_batch import open_model

        self._ctx = ctx
        self._spec = spec
        self._tmp, _, self.model, row = open_model(ctx, spec.model_id, spec.backend)
        self.task = row.task

    def __call__(self, image_ids: list[int]) -> list[Any]:
        """Per image: a result, why it was skipped, or None (deleted meanwhile)."""
        return [self.predict(i) for i in image_ids]

    def predict(self, image_id: int) -> ClassResult | BoxResult | str | None:
        """One image's classes or boxes; a message if the model cannot take it."""
        from medlabel.jobs.kinds.preannotate_cls import predict_classes
        from medlabel.jobs.kinds.preannotate_det import predict_boxes
        from medlabel.services.learning import image_volume

        with self._ctx.db.read() as s:
            image = s.get(Image, image_id)
        if image is None:
            return None
        volume = image_volume(self._ctx, image)
        if not volume.is_2d:
            return f"image {image_id}: {self.task} models take 2D images"
        spec = self._spec
        try:
            if self.task == "cls":
                return predict_classes(
                    self.model, volume, image_id, method=spec.uncertainty, samples=spec.mc_samples
                )
            return predict_boxes(self.model, volume, image_id, min_score=spec.min_score)
        except InvalidInputError as exc:  # an image the model cannot take
            return f"image {image_id}: {exc.message}"

    def close(self) -> None:
        self._tmp.cleanup()


def run_content_task(
    env: JobEnv,
    params: PreannotateParams,
    reporter: Reporter,
    row: ModelVersion,
    users: Sequence[int],
    ids: Sequence[int],
) -> dict[str, Any]:
    """Pre-annotate ``ids`` with a classification or detection model for ``users``."""
    from medlabel.services.model_proposals import (
        BoxResult,
        store_classification,
        store_detection,
    )

    ctx = env.ctx
    check_labels(ctx, env.project_id, row)  # labels may have changed since it was queued
    reporter.log(
        f"{row.task} model {row.name} v{row.version} on {len(ids)} image(s), "
        f"for {len(users)} user(s)"
    )
    proposals: list[int] = []
    scores: dict[str, float] = {}
    failed: list[str] = []
    predictor = ContentPredictor(
        row.id,
        backend=params.backend,
        uncertainty=params.uncertainty,
        mc_samples=params.mc_samples,
        min_score=params.min_score,
    )
    with env.map_batches(predictor, ids, batch_size=8, cancelled=reporter.cancelled) as results:
        for n, (image_id, result) in enumerate(results, 1):
            reporter.check_cancelled()
            if isinstance(result, str):
                failed.append(result)
                reporter.log(result, "warning")
            elif isinstance(result, BoxResult):
                proposals += store_detection(ctx, row, users, result)
                scores[str(image_id)] = round(result.uncertainty, 4)
            elif result is not None:
                proposals += store_classification(ctx, row, users, result)
                scores[str(image_id)] = round(result.uncertainty, 4)
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
