"""Whole-image prediction with a patch-trained network: sliding windows with Gaussian
blending (MONAI's ``sliding_window_inference``), softmax, and post-processing.

A *predictor* maps a batch of windows ``(batch, channels, *patch)`` (float32 tensor) to
logits ``(batch, classes, *patch)``; torch networks and ONNX Runtime sessions both
become one (:func:`torch_predictor`, :func:`medlabel.engines.deep.onnx_export.onnx_predictor`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage

from medlabel.engines.deep.loop import autocast

Predictor = Callable[[torch.Tensor], torch.Tensor]


def torch_predictor(
    net: torch.nn.Module, *, precision: str = "fp32", channels_last: bool = False
) -> Predictor:
    """A predictor running ``net`` (in eval mode) under the training precision."""
    net.eval()
    fmt = None
    if channels_last:
        fmt = torch.channels_last_3d if _is_3d(net) else torch.channels_last

    def run(x: torch.Tensor) -> torch.Tensor:
        if fmt is not None:
            x = x.contiguous(memory_format=fmt)
        with torch.inference_mode(), autocast(precision):
            out: torch.Tensor = net(x)
        return out.float()

    return run


def _is_3d(net: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.Conv3d) for m in net.modules())


def window_logits(
    image: np.ndarray,
    patch: Sequence[int],
    predictor: Predictor,
    *,
    overlap: float = 0.5,
    batch: int = 2,
) -> torch.Tensor:
    """Logits ``(classes, *spatial)`` of ``image`` ``(channels, *spatial)``: windows of
    ``patch`` overlapping by ``overlap``, blended with Gaussian weights; images smaller
    than a window are padded (with 0) and cropped back."""
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    with torch.inference_mode():
        out = sliding_window_inference(
            x, list(patch), batch, predictor, overlap=overlap, mode="gaussian"
        )
    assert isinstance(out, torch.Tensor)
    return out[0].float()


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """Softmax over the class axis (0), float32 numpy."""
    out: np.ndarray = torch.softmax(logits, dim=0).numpy().astype(np.float32)
    return out


def keep_largest_component(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Keep, for each label value, only its largest connected component (face
    connectivity); the removed voxels become background.

    Examples
    --------
    >>> a = np.array([[1, 1, 0, 1], [0, 0, 0, 2]])
    >>> keep_largest_component(a, [1, 2]).tolist()
    [[1, 1, 0, 0], [0, 0, 0, 2]]
    """
    out = labels.copy()
    for value in values:
        mask = labels == value
        comp, n = ndimage.label(mask)
        if n <= 1:
            continue
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        out[mask & (comp != int(np.argmax(sizes)))] = 0
    return out
