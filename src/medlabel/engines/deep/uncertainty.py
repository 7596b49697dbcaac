"""Class probabilities and voxel uncertainty of a segmentation model's prediction.

:meth:`SegModel.predict <medlabel.engines.deep.segmentation.SegModel.predict>` returns
labels only; pre-annotation also needs how sure the model is. :func:`predict_with_uncertainty`
draws several predictions of the image — on flipped copies of it (test-time
augmentation, ``tta``), with the network's dropout left on (Monte-Carlo dropout,
``mc-dropout``, seeded), or both — averages the softmax probabilities and returns the
labels, the averaged probabilities, the normalised predictive entropy and mutual
information (BALD) per voxel and the disagreement of the samples. ``auto`` uses MC
dropout when the model has dropout (:mod:`~medlabel.engines.deep.mc_dropout`), else
test-time augmentation.

This module only *adds* to the segmentation task (it reads the runners that
:class:`~medlabel.engines.deep.segmentation.SegModel` builds); the network code is theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from medlabel.engines.deep.inference import keep_largest_component, probabilities, window_logits
from medlabel.engines.deep.mc_dropout import (
    DEFAULT_MC_SAMPLES,
    SampleStatistics,
    UncertaintyMethod,
    has_dropout,
    mc_dropout_mode,
    resolve_method,
)
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
        Fraction of samples whose arg-max differs from the mean's, per voxel (0 with one
        sample).
    samples
        How many predictions were averaged.
    mutual_information
        Entropy of the mean minus the mean entropy of the samples, divided by
        ``log(classes)`` (BALD: high where the samples disagree confidently),
        ``(planes, rows, columns)`` float32; None when not computed.
    features
        The model's unit feature vector of the image, pooled from the first sample's
        pass (:func:`~medlabel.engines.deep.features.bottleneck_features`); None when
        not asked for or not available (LiteMedSAM, ONNX).
    info
        ``uncertainty_method`` (``tta``, ``mc-dropout``, ``tta+mc-dropout`` or ``none``
        for a single prediction), ``uncertainty_samples``, ``uncertainty_reason`` (why
        that method), ``mc_seed`` and ``dropout`` for MC dropout, ``mutual_information``
        (the image's mean over :meth:`uncertainty`'s region).
    """

    labels: np.ndarray
    probabilities: np.ndarray
    entropy: np.ndarray
    disagreement: np.ndarray
    samples: int
    mutual_information: np.ndarray | None = None
    features: np.ndarray | None = None
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
        return _region_mean(self.entropy, self.probabilities, threshold)

    def bald(self, *, threshold: float = 0.1) -> float:
        """Mean normalised mutual information over :meth:`uncertainty`'s region (0
        without it or without such voxels)."""
        if self.mutual_information is None:
            return 0.0
        return _region_mean(self.mutual_information, self.probabilities, threshold)


def _region_mean(values: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    region = (1.0 - probs[0]) >= threshold
    return float(values[region].mean()) if region.any() else 0.0


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
            emb = torch.from_numpy(runner.embedding(model_in).astype(np.float32))[None]
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


def _view(model: Any, volume: Volume, axes: tuple[int, ...]) -> np.ndarray:
    """Class probabilities of ``volume`` flipped along ``axes`` (none: as it is), flipped
    back onto ``volume``'s grid."""
    if not axes:
        return class_probabilities(model, volume)
    flipped = volume.with_array(np.flip(volume.array, axis=axes).copy())
    p = class_probabilities(model, flipped)
    return np.flip(p, axis=tuple(a + 1 for a in axes)).copy()


def predict_with_uncertainty(
    model: Any,
    volume: Volume,
    *,
    tta: bool = True,
    method: str | UncertaintyMethod = UncertaintyMethod.AUTO,
    samples: int = DEFAULT_MC_SAMPLES,
    seed: int = 0,
    features: bool = False,
) -> SegPrediction:
    """Predict ``volume`` with a loaded segmentation model and measure its uncertainty.

    Parameters
    ----------
    model
        A :class:`~medlabel.engines.deep.segmentation.SegModel`.
    volume
        The image (its affine gives the spacing).
    tta
        Whether flips may be used: ``False`` turns test-time augmentation into a single
        prediction (method ``none``) and MC dropout runs without flips.
    method
        ``tta``: the image and its column and row flips (3 samples, 2 for one row);
        ``mc-dropout``: ``samples`` passes with the dropout layers on; ``tta+mc-dropout``:
        ``samples`` passes with dropout on, cycling through the image and its flips;
        ``auto``: ``mc-dropout`` when the model has dropout, else ``tta``. With the
        ONNX backend (no dropout at inference) MC dropout falls back to ``tta``, the
        reason in ``info["uncertainty_reason"]``.
    samples
        Stochastic passes of MC dropout (at least 2).
    seed
        Seeds the dropout masks (the global torch generator is restored afterwards).
    features
        Also pool the U-Net's bottleneck features during the first (un-flipped) sample
        into :attr:`SegPrediction.features`, saving a pass of
        :func:`~medlabel.engines.deep.features.model_features`.

    Returns
    -------
    SegPrediction
        Labels (post-processed like :meth:`SegModel.predict`), mean probabilities,
        normalised entropy and mutual information, sample disagreement, and ``info``.

    Raises
    ------
    InvalidInputError
        ``mc-dropout`` asked of a model without dropout, an unknown method, or
        ``samples`` below 2.
    """
    from medlabel.core.errors import InvalidInputError

    net = getattr(model, "torch_network", None)
    chosen, why = resolve_method(method, dropout=has_dropout(net), torch_net=net is not None)
    flips = _flips(volume) if tta else []
    views: list[tuple[int, ...]] = [(), *flips]
    info: dict[str, Any] = {"uncertainty_reason": why} if why else {}
    acc = SampleStatistics()  # running sums: 8 samples of a CT cost one sample's memory
    pooled: np.ndarray | None = None

    def first() -> np.ndarray:  # the un-flipped image, features pooled on the way
        nonlocal pooled
        if not features:
            return _view(model, volume, ())
        from medlabel.engines.deep.features import bottleneck_features

        with bottleneck_features(model) as vector:
            out = _view(model, volume, ())
        pooled = vector()
        return out

    if chosen == UncertaintyMethod.TTA:
        acc.add(first())
        for axes in flips:
            acc.add(_view(model, volume, axes))
        name = chosen.value if flips else "none"
    else:
        if samples < 2:
            raise InvalidInputError(f"MC dropout needs at least 2 samples, got {samples}")
        both = chosen == UncertaintyMethod.TTA_MC_DROPOUT
        assert net is not None  # resolve_method only picks MC dropout with a network
        with torch.random.fork_rng(devices=[]), mc_dropout_mode(net):
            torch.manual_seed(seed)
            acc.add(first())
            for i in range(1, samples):
                acc.add(_view(model, volume, views[i % len(views)] if both else ()))
        name = chosen.value
        info["mc_seed"] = seed
        info["dropout"] = float(model.card.architecture.params.get("dropout", 0.0))
    mean, ent, mi = acc.result()
    idx = mean.argmax(0)
    values = np.array([lab.value for lab in model.card.labels], np.uint8)
    labels = values[idx]
    if model.card.inference.get("largest_component"):
        labels = keep_largest_component(labels, [int(v) for v in values[1:]])
    pred = SegPrediction(
        labels=labels.astype(np.uint8),
        probabilities=mean,
        entropy=ent,
        disagreement=acc.disagreement(),
        samples=acc.n,
        mutual_information=mi,
        features=pooled,
        info={"uncertainty_method": name, "uncertainty_samples": acc.n, **info},
    )
    pred.info["mutual_information"] = round(pred.bald(), 4)
    return pred
