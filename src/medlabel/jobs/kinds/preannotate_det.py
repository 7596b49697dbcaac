"""Pre-annotation with a detection model: scored boxes of one image in voxel
coordinates, and the image's uncertainty (see :mod:`medlabel.services.model_proposals`)."""

from __future__ import annotations

import time
from typing import Any

from medlabel.imaging.volume import Volume
from medlabel.services.model_proposals import BoxResult, box_from_pixels


def predict_boxes(model: Any, volume: Volume, image_id: int, *, min_score: float) -> BoxResult:
    """Run a loaded detection model (:class:`~medlabel.engines.deep.detection.DetModel`)
    on a 2D image. Every box it returns counts toward the uncertainty; those scoring at
    least ``min_score`` become proposals. The embedding is the model's pooled stride-16
    features (:func:`~medlabel.engines.deep.features.image_embedding`).

    Raises
    ------
    InvalidInputError
        The image is not 2D.
    """
    from medlabel.engines.deep.features import image_embedding

    started = time.perf_counter()
    found = model.predict(volume)
    vector, kind = image_embedding(model, volume)
    shape = volume.array.shape[:3]
    kept = [
        box_from_pixels(b.label, b.score, (b.xmin, b.ymin, b.xmax, b.ymax), shape)
        for b in found
        if b.score >= min_score
    ]
    return BoxResult(
        image_id=image_id,
        boxes=kept,
        embedding=vector,
        seconds=time.perf_counter() - started,
        scores=[float(b.score) for b in found],
        embedding_kind=kind.value,
    )
