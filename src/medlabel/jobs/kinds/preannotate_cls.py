"""Pre-annotation with a classification model: class probabilities, confidence,
uncertainty (test-time augmentation or MC dropout), an embedding and a saliency map of
one image (see
:mod:`medlabel.services.model_proposals` for how they are stored)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from medlabel.engines.deep.mc_dropout import DEFAULT_MC_SAMPLES
from medlabel.imaging.volume import Volume
from medlabel.services.model_proposals import ClassResult

#: classical models (no gradients) explain by occlusion, networks by Grad-CAM
_OCCLUSION_ARCHES = ("hog-svm", "hog-rf")


def saliency_method(model: Any) -> str:
    """``gradcam`` for the networks, ``occlusion`` for the classical models."""
    return "occlusion" if getattr(model, "arch", "") in _OCCLUSION_ARCHES else "gradcam"


def predict_classes(
    model: Any,
    volume: Volume,
    image_id: int,
    *,
    method: str = "auto",
    samples: int = DEFAULT_MC_SAMPLES,
) -> ClassResult:
    """Run a loaded classification model (:class:`~medlabel.engines.deep.classification.
    ClsModel`) on a 2D image: every class's probability averaged over the uncertainty
    method's samples (:func:`~medlabel.engines.deep.cls_uncertainty.class_uncertainty`:
    ``auto``, ``tta``, ``mc-dropout`` or ``tta+mc-dropout``), the saliency map of the
    most probable class, ``(rows, columns)`` in 0..1, and the image's embedding (the
    model's features, else the thumbnail).

    Raises
    ------
    InvalidInputError
        The image is not 2D (the model's ``plane_of`` says so), or MC dropout asked of a
        model without dropout.
    """
    from medlabel.engines.deep.cls_uncertainty import class_uncertainty
    from medlabel.engines.deep.features import image_embedding

    started = time.perf_counter()
    measured = class_uncertainty(model, volume, method=method, samples=samples)
    probs = np.asarray(measured.probabilities, np.float64)
    probs = probs / probs.sum()  # a mean of softmax outputs: already 1 up to rounding
    target = int(probs.argmax())
    saliency = saliency_method(model)
    heat = np.asarray(model.explain(volume, target, method=saliency), np.float32)
    vector, kind = image_embedding(model, volume)
    return ClassResult(
        image_id=image_id,
        probabilities={str(n): float(p) for n, p in zip(model.names, probs, strict=True)},
        saliency=heat,
        saliency_method=saliency,
        embedding=vector,
        seconds=time.perf_counter() - started,
        embedding_kind=kind.value,
        info=measured.info,
    )
