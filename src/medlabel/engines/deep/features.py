"""A fixed-length feature vector of an image from a loaded model itself, for the
diversity strategies (core-set sampling on what the model sees, not on pixels).

- segmentation U-Nets: the mean and the maximum of each channel of the deepest block's
  output (a forward hook on the bottleneck, over every sliding window);
- the LiteMedSAM decoder model: the mean and maximum of each channel of the 256×64×64
  image embedding over the cells covering the image (512 numbers);
- the classification CNN: its penultimate layer (globally pooled last stage); the
  LiteMedSAM feature head: its hidden layer; the classical models: their HOG/LBP
  features;
- the detection network: the mean and maximum of each channel of its stride-16 stage.

Vectors are L2-normalised (unit length; all zero stays zero), computed in eval mode
(dropout off), so the same image always gives the same vector. :func:`image_embedding`
falls back to the pixel thumbnail (:func:`medlabel.active.embedding.embedding`) when the
model cannot give features (an ONNX Runtime session has no hooks), and says which one it
returned. :func:`bottleneck_features` pools a U-Net's features during a prediction that
runs anyway (pre-annotation's first sample), saving a pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from medlabel.active.embedding import EmbeddingKind, embedding
from medlabel.imaging.volume import Volume


def unit(vector: np.ndarray) -> np.ndarray:
    """``vector`` (1D) divided by its L2 norm, float32 (zero stays zero).

    Examples
    --------
    >>> unit(np.array([3.0, 4.0])).tolist()
    [0.6000000238418579, 0.800000011920929]
    """
    v = np.asarray(vector, np.float64).ravel()
    norm = float(np.linalg.norm(v))
    return (v / norm if norm > 0 else v).astype(np.float32)


class _PooledOutput:
    """A forward hook keeping the running channel mean and maximum of a module's output
    ``(batch, channels, *spatial)`` over every call (sliding windows)."""

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0
        self.peak: torch.Tensor | None = None

    def __call__(self, _m: nn.Module, _i: Any, out: torch.Tensor) -> None:
        flat = out.detach().float().flatten(2)  # (batch, channels, voxels)
        total = flat.sum(dim=(0, 2))
        peak = flat.amax(dim=(0, 2))
        self.total = total if self.total is None else self.total + total
        self.peak = peak if self.peak is None else torch.maximum(self.peak, peak)
        self.count += flat.shape[0] * flat.shape[2]

    def vector(self) -> np.ndarray:
        if self.total is None or self.peak is None:
            raise RuntimeError("the hooked module never ran")
        mean = (self.total / max(self.count, 1)).numpy()
        return np.concatenate([mean, self.peak.numpy()])


def _hooked(module: nn.Module, net: nn.Module, run: Any) -> np.ndarray:
    """Run ``run()`` with ``net`` in eval mode and ``module``'s output pooled."""
    pooled = _PooledOutput()
    handle = module.register_forward_hook(pooled, prepend=True)
    was_training = net.training
    net.eval()
    try:
        run()
    finally:
        handle.remove()
        net.train(was_training)
    return pooled.vector()


def _segmentation(model: Any, volume: Volume) -> np.ndarray | None:
    from medlabel.engines.deep.mc_dropout import bottleneck
    from medlabel.engines.deep.uncertainty import class_probabilities

    net = model.torch_network
    if net is None:
        return None
    if model.card.architecture.name == "medsam-decoder":
        from medlabel.engines.deep.cls_models import pool_embedding
        from medlabel.engines.deep.medsam import frame_input

        model_in, frame = frame_input(volume)
        return pool_embedding(model._runner.embedding(model_in), frame.size)
    return _hooked(bottleneck(net), net, lambda: class_probabilities(model, volume))


@contextmanager
def bottleneck_features(model: Any) -> Iterator[Callable[[], np.ndarray | None]]:
    """Pool a segmentation U-Net's bottleneck output while the block runs, so features
    come for free with a prediction: yields a function returning the unit feature vector
    of what ran (as :func:`model_features`), or None when nothing ran or the model is
    not a torch U-Net. The hook sees the output before the MC dropout, so a pass with
    dropout on gives the same features as one without."""
    from medlabel.engines.deep.mc_dropout import bottleneck
    from medlabel.engines.deep.segmentation import SegModel

    net = model.torch_network if isinstance(model, SegModel) else None
    if net is None or model.card.architecture.name == "medsam-decoder":
        yield lambda: None
        return
    pooled = _PooledOutput()
    handle = bottleneck(net).register_forward_hook(pooled, prepend=True)

    def vector() -> np.ndarray | None:
        return unit(pooled.vector()) if pooled.count else None

    try:
        yield vector
    finally:
        handle.remove()


def _classification(model: Any, volume: Volume) -> np.ndarray | None:
    from medlabel.engines.deep.cls_models import hog_lbp_features, pool_embedding

    x, frame = model._inputs(volume)
    if model.arch == "cls-resnet":  # one network, or each of an ensemble's in turn
        from medlabel.engines.deep.cls_models import resnet_members

        batch = torch.from_numpy(np.ascontiguousarray(x[np.newaxis], dtype=np.float32))
        return np.concatenate(
            [
                _hooked(m.features, m, lambda m=m: m(batch))[: m.fc.in_features]
                for m in resnet_members(model._net)
            ]
        )
    if model.arch == "cls-feature-head":
        head = model._net
        feats = torch.from_numpy(pool_embedding(model._embed(x), frame.size)[np.newaxis])
        layers = list(head.mlp)
        with torch.inference_mode():
            head.eval()
            z = (feats - head.mean) / head.std
            for layer in layers[:-1]:  # every layer but the classifier
                z = layer(z)
        return np.asarray(z[0].numpy(), np.float32)
    return hog_lbp_features(x[0])


def _detection(model: Any, volume: Volume) -> np.ndarray | None:
    from medlabel.engines.deep.cls_data import network_input, plane_of

    net = model._net
    x = torch.from_numpy(network_input(plane_of(volume), model.card.input)[np.newaxis])

    def run() -> None:
        with torch.inference_mode():
            net(x)

    return _hooked(net.s16, net, run)


def model_features(model: Any, volume: Volume) -> np.ndarray | None:
    """The model's L2-normalised feature vector of ``volume`` (see the module
    docstring), or None when the loaded model cannot give one (ONNX backend).

    Parameters
    ----------
    model
        A loaded :class:`~medlabel.engines.deep.segmentation.SegModel`,
        :class:`~medlabel.engines.deep.classification.ClsModel` or
        :class:`~medlabel.engines.deep.detection.DetModel`.
    volume
        The image, as the model takes it.

    Returns
    -------
    numpy.ndarray or None
        ``(features,)`` float32 of unit length; its length depends on the model only.
    """
    from medlabel.engines.deep.classification import ClsModel
    from medlabel.engines.deep.detection import DetModel
    from medlabel.engines.deep.segmentation import SegModel

    if isinstance(model, SegModel):
        found = _segmentation(model, volume)
    elif isinstance(model, ClsModel):
        found = _classification(model, volume)
    elif isinstance(model, DetModel):
        found = _detection(model, volume)
    else:
        return None
    return None if found is None else unit(found)


def image_embedding(
    model: Any, volume: Volume, *, known: np.ndarray | None = None
) -> tuple[list[float], EmbeddingKind]:
    """The model's features of ``volume`` (``known``, e.g. from the prediction's pass —
    :attr:`~medlabel.engines.deep.uncertainty.SegPrediction.features` — else
    :func:`model_features`), else its pixel thumbnail; and which of the two it is."""
    found = known if known is not None else model_features(model, volume)
    if found is None:
        return embedding(volume), EmbeddingKind.THUMBNAIL
    return [round(float(v), 6) for v in found], EmbeddingKind.MODEL_FEATURES
