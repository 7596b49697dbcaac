"""Pre-annotation with a classification model: class probabilities, confidence,
uncertainty and a saliency map of one image (see
:mod:`medlabel.services.model_proposals` for how they are stored)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from medlabel.imaging.volume import Volume
from medlabel.services.model_proposals import ClassResult

#: classical models (no gradients) explain by occlusion, networks by Grad-CAM
_OCCLUSION_ARCHES = ("hog-svm", "hog-rf")


def saliency_method(model: Any) -> str:
    """``gradcam`` for the networks, ``occlusion`` for the classical models."""
    return "occlusion" if getattr(model, "arch", "") in _OCCLUSION_ARCHES else "gradcam"


def predict_classes(
    model: Any, volume: Volume, image_id: int, embedding: list[float]
) -> ClassResult:
    """Run a loaded classification model (:class:`~medlabel.engines.deep.classification.
    ClsModel`) on a 2D image: every class's probability and the saliency map of the most
    probable class, ``(rows, columns)`` in 0..1.

    Raises
    ------
    InvalidInputError
        The image is not 2D (the model's ``plane_of`` says so).
    """
    started = time.perf_counter()
    probs = np.asarray(model.probabilities(volume), np.float64)
    probs = probs / probs.sum()  # softmax output: already 1 up to rounding
    target = int(probs.argmax())
    method = saliency_method(model)
    heat = np.asarray(model.explain(volume, target, method=method), np.float32)
    return ClassResult(
        image_id=image_id,
        probabilities={str(n): float(p) for n, p in zip(model.names, probs, strict=True)},
        saliency=heat,
        saliency_method=method,
        embedding=embedding,
        seconds=time.perf_counter() - started,
    )
