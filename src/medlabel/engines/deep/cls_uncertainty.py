"""Class probabilities of one image with their uncertainty, for pre-annotation and
active learning.

:func:`class_uncertainty` averages several predictions of a loaded
:class:`~medlabel.engines.deep.classification.ClsModel`: of the image and its column and
row flips (test-time augmentation, ``tta``, every model), or of ``samples`` passes with
the network's dropout on (Monte-Carlo dropout, ``mc-dropout``: the CNN and the LiteMedSAM
feature head, which have dropout before their classifier), or both. ``auto`` takes MC
dropout when the model has dropout, else test-time augmentation (the classical models).
MC dropout runs the torch network even when the model predicts with ONNX Runtime, so it
needs no fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep.mc_dropout import (
    DEFAULT_MC_SAMPLES,
    UncertaintyMethod,
    has_dropout,
    mc_dropout_mode,
    resolve_method,
    sample_statistics,
)
from medlabel.imaging.volume import Volume


@dataclass(frozen=True)
class ClassUncertainty:
    """Mean class probabilities of one image and how unsure they are.

    Attributes
    ----------
    probabilities
        ``(classes,)`` float32, summing to 1, in the card's class order.
    entropy
        Normalised entropy of ``probabilities`` (0 sure .. 1 all classes equal).
    mutual_information
        Normalised mutual information of the samples (BALD; 0 when they agree).
    samples
        Predictions averaged.
    info
        ``uncertainty_method``, ``uncertainty_samples``, ``mutual_information``, and
        ``uncertainty_reason`` / ``mc_seed`` where they apply.
    """

    probabilities: np.ndarray
    entropy: float
    mutual_information: float
    samples: int
    info: dict[str, Any] = field(default_factory=dict)


def _flipped(image: Volume | np.ndarray, axis: int) -> Volume | np.ndarray:
    """``image`` flipped along rows (0) or columns (1)."""
    if isinstance(image, Volume):
        return image.with_array(np.flip(image.array, axis=axis + 1).copy())
    return np.flip(np.asarray(image), axis=axis).copy()


def _mc_probabilities(model: Any, image: Volume | np.ndarray, samples: int) -> np.ndarray:
    """``samples`` stochastic probability vectors ``(samples, classes)`` in one batch
    (each row gets its own dropout masks)."""
    from medlabel.engines.deep.cls_models import pool_embedding

    x, frame = model._inputs(image)
    net = model._net
    if model.arch == "cls-resnet":
        batch = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    else:  # the feature head on the pooled LiteMedSAM embedding
        batch = torch.from_numpy(pool_embedding(model._embed(x), frame.size))[None]
    batch = batch.expand(samples, *batch.shape[1:]).contiguous()
    with mc_dropout_mode(net), torch.inference_mode():
        logits = net(batch)
    return np.asarray(torch.softmax(logits.float(), dim=1).numpy(), np.float64)


def class_uncertainty(
    model: Any,
    image: Volume | np.ndarray,
    *,
    method: str | UncertaintyMethod = UncertaintyMethod.AUTO,
    samples: int = DEFAULT_MC_SAMPLES,
    seed: int = 0,
) -> ClassUncertainty:
    """Predict a 2D image with a loaded classification model and measure its uncertainty.

    Parameters
    ----------
    model
        A :class:`~medlabel.engines.deep.classification.ClsModel`.
    image
        A 2D Volume or an array ``(rows, columns[, 3])``.
    method
        ``tta`` (the image and its column and row flips: 3 predictions),
        ``mc-dropout`` (``samples`` passes with dropout on), ``tta+mc-dropout``
        (``samples`` dropout passes on each of the three views) or ``auto``.
    samples
        Stochastic passes of MC dropout (at least 2).
    seed
        Seeds the dropout masks (the global torch generator is restored afterwards).

    Returns
    -------
    ClassUncertainty

    Raises
    ------
    InvalidInputError
        MC dropout asked of a model without dropout (the classical models), an unknown
        method, or ``samples`` below 2.
    """
    net = getattr(model, "_net", None) if model.arch in ("cls-resnet", "cls-feature-head") else None
    chosen, why = resolve_method(method, dropout=has_dropout(net))
    views = [image, _flipped(image, 1), _flipped(image, 0)]
    info: dict[str, Any] = {"uncertainty_reason": why} if why else {}
    if chosen == UncertaintyMethod.TTA:
        probs = np.stack([np.asarray(model.probabilities(v), np.float64) for v in views])
    else:
        if samples < 2:
            raise InvalidInputError(f"MC dropout needs at least 2 samples, got {samples}")
        both = chosen == UncertaintyMethod.TTA_MC_DROPOUT
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            probs = np.concatenate(
                [_mc_probabilities(model, v, samples) for v in (views if both else views[:1])]
            )
        info["mc_seed"] = seed
    mean, ent, mi = sample_statistics(probs)
    mean = mean / mean.sum()
    info = {
        "uncertainty_method": chosen.value,
        "uncertainty_samples": len(probs),
        "mutual_information": round(float(mi), 4),
        **info,
    }
    return ClassUncertainty(
        probabilities=mean.astype(np.float32),
        entropy=float(ent),
        mutual_information=float(mi),
        samples=len(probs),
        info=info,
    )
