"""Class probabilities and voxel uncertainty of a segmentation model's prediction.

:meth:`SegModel.predict <medlabel.engines.deep.segmentation.SegModel.predict>` returns
labels only; pre-annotation also needs how sure the model is. :func:`predict_with_uncertainty`
runs the model on the image and on flipped copies of it (test-time augmentation), averages
the softmax probabilities and returns the labels, the averaged probabilities, the
normalised predictive entropy per voxel and the disagreement of the augmented samples.

This module only *adds* to the segmentation task (it reads the runners that
:class:`~medlabel.engines.deep.segmentation.SegModel` builds); the network code is theirs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from medlabel.engines.deep.inference import keep_largest_component, probabilities, window_logits
from medlabel.engines.deep.resample import network_array, to_shape
from medlabel.imaging.volume import Volume


@dataclass
class SegPrediction:
    """A segmentation with its uncertainty, all on the input's grid.

    Attributes
    ----------
    labels
        Label values ``(planes, rows, columns)``, uint8.
    probabilities
        Mean class probabilities ``(classes, planes, rows, columns)``, float32; classes
        in the order of the card's labels.
    entropy
        Predictive entropy of ``probabilities`` divided by ``log(classes)``: 0 (sure) ..
        1 (all classes equally likely), ``(planes, rows, columns)`` float32.
    disagreement
        Fraction of samples whose arg-max differs from the mean's, per voxel (0 without
        augmentation).
    samples
        How many predictions were averaged (1 + flips).
    """

    labels: np.ndarray
    probabilities: np.ndarray
    entropy: np.ndarray
    disagreement: np.ndarray
    samples: int
    info: dict[str, Any] = field(default_factory=dict)

    def confidence(self, mask: np.ndarray) -> float | None:
        """Mean max-probability inside ``mask`` (None for an empty mask)."""
        if not mask.any():
            return None
        return float(self.probabilities.max(axis=0)[mask].mean())

    def uncertainty(self, *, threshold: float = 0.1) -> float:
        """One number for the image, 0..1: mean normalised entropy over the voxels where
        the model gives a foreground class at least ``threshold`` probability (the
        predicted structures and the places it hesitates); 0 when there are none."""
        region = (1.0 - self.probabilities[0]) >= threshold
        if not region.any():
            return 0.0
        return float(self.entropy[region].mean())


def class_probabilities(model: Any, volume: Volume) -> np.ndarray:
    """Softmax probabilities ``(classes, planes, rows, columns)`` of a loaded
    segmentation model (:class:`~medlabel.engines.deep.segmentation.SegModel`) on
    ``volume``'s grid."""
    from medlabel.engines.deep.segmentation import _PatchRunner

    runner = model._runner
    spec = model.card.input
    if isinstance(runner, _PatchRunner):
        x = network_array(volume, spec)
        logits = window_logits(
            x,
            spec.patch_size,
            runner.predictor,
            overlap=float(model.card.inference.get("sw_overlap", 0.5)),
            batch=2 if spec.dims == 3 else 4,
        )
        target = volume.spatial_shape[1:] if spec.dims == 2 else volume.spatial_shape
        probs = to_shape(probabilities(logits), tuple(target), order=1)
    else:  # the fine-tuned LiteMedSAM decoder (2D)
        from medlabel.engines.deep.medsam import frame_input

        model_in, frame = frame_input(volume)
        if runner.session is not None:
            out = runner.session.run(None, {"input": model_in[None]})[0][0]
        else:
            emb = torch.from_numpy(runner.embedder(model_in).astype(np.float32))[None]
            with torch.inference_mode():
                out = runner.head(emb)[0]
        t = torch.as_tensor(out).float()[:, : frame.size[0], : frame.size[1]]
        probs = to_shape(probabilities(t), tuple(frame.shape), order=1)
    probs = np.asarray(probs, np.float32)
    if spec.dims == 2:
        probs = probs[:, np.newaxis]
    return probs


def _flips(volume: Volume) -> list[tuple[int, ...]]:
    """In-plane flips (row, column axes) used as test-time augmentation."""
    return [(2,), (1,)] if volume.spatial_shape[1] > 1 else [(2,)]


def predict_with_uncertainty(model: Any, volume: Volume, *, tta: bool = True) -> SegPrediction:
    """Predict ``volume`` with a loaded segmentation model and measure its uncertainty.

    Parameters
    ----------
    model
        A :class:`~medlabel.engines.deep.segmentation.SegModel`.
    volume
        The image (its affine gives the spacing).
    tta
        Also predict the image flipped along columns and rows and average the
        probabilities (3 samples instead of 1).

    Returns
    -------
    SegPrediction
        Labels (post-processed like :meth:`SegModel.predict`), mean probabilities,
        normalised entropy and sample disagreement.
    """
    probs = class_probabilities(model, volume)
    samples = [probs]
    if tta:
        for axes in _flips(volume):
            arr = np.flip(volume.array, axis=axes).copy()
            flipped = volume.with_array(arr)
            p = class_probabilities(model, flipped)
            samples.append(np.flip(p, axis=tuple(a + 1 for a in axes)).copy())
    mean = np.mean(samples, axis=0).astype(np.float32)
    idx = mean.argmax(0)
    disagreement = np.mean([s.argmax(0) != idx for s in samples], axis=0).astype(np.float32)
    n = mean.shape[0]
    ent = -(mean * np.log(np.clip(mean, 1e-8, 1.0))).sum(0)
    ent = (ent / math.log(n)) if n > 1 else np.zeros_like(ent)
    values = np.array([lab.value for lab in model.card.labels], np.uint8)
    labels = values[idx]
    if model.card.inference.get("largest_component"):
        labels = keep_largest_component(labels, [int(v) for v in values[1:]])
    return SegPrediction(
        labels=labels.astype(np.uint8),
        probabilities=mean,
        entropy=np.clip(ent, 0.0, 1.0).astype(np.float32),
        disagreement=disagreement,
        samples=len(samples),
    )
