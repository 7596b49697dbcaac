"""Segmentation pre-annotation a batch of images at a time, for
:meth:`medlabel.jobs.spec.JobEnv.map_batches`: :class:`SegPredictor` loads the model once
per worker (a thread of the job, or a Ray actor) and turns image ids into
:class:`~medlabel.services.learning.ImagePrediction` s, which the job stores."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.services.learning import ImagePrediction
from medlabel.storage.db.models import Image, ModelVersion

if TYPE_CHECKING:
    from medlabel.services.context import Context


@dataclass
class SegImagePrediction(ImagePrediction):
    """An :class:`~medlabel.services.learning.ImagePrediction` with how its uncertainty
    was measured (``info``: method, samples, mutual information) and which embedding it
    carries (``model-features`` or ``thumbnail``)."""

    info: dict[str, Any] = field(default_factory=dict)
    embedding_kind: str = "thumbnail"


def open_model(
    ctx: Context, model_id: int, backend: str
) -> tuple[tempfile.TemporaryDirectory[str], Any, Any, ModelVersion]:
    """A registered model's files extracted into a temporary folder and loaded: (the
    folder — clean it up when done —, its card, the loaded model, its row).

    Raises
    ------
    NotFoundError
        No such model version.
    """
    from medlabel.engines.deep.model_dir import ModelCard
    from medlabel.engines.deep.tasks import get_task
    from medlabel.services.models import extract_model

    with ctx.db.read() as s:
        row = s.get(ModelVersion, model_id)
    if row is None:
        raise NotFoundError(f"model {model_id} not found")
    tmp = tempfile.TemporaryDirectory(prefix="medlabel-model-")
    try:
        directory = extract_model(ctx, row, Path(tmp.name) / "model")
        card = ModelCard.read(directory)
        model = get_task(card.task).load(directory, card, backend=backend)
    except BaseException:
        tmp.cleanup()
        raise
    return tmp, card, model, row


@dataclass(frozen=True)
class SegPredictor:
    """A worker factory: ``SegPredictor(model_id, backend, tta, uncertainty,
    mc_samples)(ctx)`` loads the model; the result maps a batch of image ids to one
    outcome each (picklable, so Ray actors can build it)."""

    model_id: int
    backend: str = "auto"
    tta: bool = True
    #: ``auto``, ``tta``, ``mc-dropout`` or ``tta+mc-dropout``
    uncertainty: str = "auto"
    mc_samples: int = 8

    def __call__(self, ctx: Context) -> LoadedSegModel:
        return LoadedSegModel(ctx, self)


class LoadedSegModel:
    """One worker's loaded segmentation model (its files in a temporary folder until
    :meth:`close`)."""

    def __init__(self, ctx: Context, spec: SegPredictor) -> None:
        self._ctx = ctx
        self._spec = spec
        self._tmp, self.card, self.model, _ = open_model(ctx, spec.model_id, spec.backend)

    def __call__(self, image_ids: list[int]) -> list[Any]:
        """Per image: a prediction, why it was skipped, or None (deleted meanwhile)."""
        return [self.predict(i) for i in image_ids]

    def predict(self, image_id: int) -> SegImagePrediction | str | None:
        """One image's prediction; a message if the model cannot take it."""
        from medlabel.engines.deep.features import image_embedding
        from medlabel.engines.deep.uncertainty import predict_with_uncertainty
        from medlabel.services.learning import image_volume

        card = self.card
        with self._ctx.db.read() as s:
            image = s.get(Image, image_id)
        if image is None:
            return None
        started = time.perf_counter()
        volume = image_volume(self._ctx, image)
        any_channels = card.architecture.name == "medsam-decoder"  # it converts to grey
        if (card.input.dims == 2) != volume.is_2d or (
            not any_channels and card.input.channels != volume.channels
        ):
            want = f"{card.input.dims}D with {card.input.channels} channel(s)"
            return f"image {image_id}: the model takes {want} images"
        try:
            pred = predict_with_uncertainty(
                self.model,
                volume,
                tta=self._spec.tta,
                method=self._spec.uncertainty,
                samples=self._spec.mc_samples,
                features=True,
            )
            vector, kind = image_embedding(self.model, volume, known=pred.features)
        except InvalidInputError as exc:  # an image the model cannot take (2D/3D...)
            return f"image {image_id}: {exc.message}"
        fg = pred.labels > 0
        return SegImagePrediction(
            image_id=image_id,
            labels=pred.labels,
            entropy=pred.entropy,
            max_probability=pred.probabilities.max(axis=0),
            uncertainty=pred.uncertainty(),
            disagreement=float(pred.disagreement[fg].mean()) if fg.any() else 0.0,
            samples=pred.samples,
            embedding=vector,
            seconds=time.perf_counter() - started,
            info=dict(pred.info),
            embedding_kind=kind.value,
        )

    def close(self) -> None:
        self._tmp.cleanup()
