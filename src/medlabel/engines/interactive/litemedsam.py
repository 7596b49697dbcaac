"""The LiteMedSAM engine: a box becomes a mask; clicks refine it; a neighbouring slice's
mask becomes the next slice's prompt (propagation)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from medlabel.engines.base import EngineRequest, ParamKind, ParamSpec, PromptKind, Proposal
from medlabel.engines.interactive.cache import EmbeddingCache, input_key
from medlabel.engines.interactive.corrections import (
    DEFAULT_MARGIN,
    DEFAULT_REACH,
    apply_clicks,
    mask_logits,
)
from medlabel.engines.interactive.model import LiteMedSAM, shared_model
from medlabel.engines.interactive.preprocess import Frame, logits_to_slice, model_input, to_grey8
from medlabel.engines.interactive.stopping import StopRule, intensity_stats, should_stop
from medlabel.engines.planes import PlaneView, plane_of, request_plane
from medlabel.imaging.volume import Volume
from medlabel.imaging.windowing import Window, auto_window

#: bytes of embeddings kept per process (one slice: 4 MiB)
DEFAULT_CACHE_BYTES = 512 * 2**20


def _bbox(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return float(rows[0]), float(cols[0]), float(rows[-1]), float(cols[-1])


class LiteMedSAMEngine:
    """Box → mask with LiteMedSAM; positive/negative clicks bend its logits locally."""

    name = "litemedsam"
    version = "lite_medsam-1"
    title = "AI box (LiteMedSAM)"
    description = (
        "Draw a box around a structure to get its mask; click inside what it missed or "
        "outside what it over-segmented to correct it; propagate through a volume."
    )
    prompts = frozenset(
        {PromptKind.BOX, PromptKind.POSITIVE, PromptKind.NEGATIVE, PromptKind.PREVIOUS}
    )
    required = frozenset({PromptKind.BOX, PromptKind.PREVIOUS})
    volumetric = False
    params = (
        ParamSpec(
            "window_center",
            ParamKind.FLOAT,
            None,
            "window centre the model sees (default: CT soft tissue, else percentiles)",
        ),
        ParamSpec("window_width", ParamKind.FLOAT, None, "window width", minimum=1.0),
        ParamSpec(
            "propagate",
            ParamKind.BOOL,
            False,
            "previous holds a neighbouring slice's mask: use its box",
        ),
        ParamSpec(
            "box_margin",
            ParamKind.FLOAT,
            1.0,
            "pixels added around a propagated box",
            minimum=0.0,
            maximum=50.0,
        ),
        ParamSpec(
            "prior_weight",
            ParamKind.FLOAT,
            0.5,
            "propagation: pull towards the previous slice's shape (logits per pixel of distance)",
            minimum=0.0,
            maximum=10.0,
        ),
        ParamSpec(
            "reach",
            ParamKind.FLOAT,
            DEFAULT_REACH,
            "click bump width / structure size",
            minimum=0.01,
            maximum=1.0,
        ),
        ParamSpec(
            "margin",
            ParamKind.FLOAT,
            DEFAULT_MARGIN,
            "click strength (logits)",
            minimum=0.0,
            maximum=20.0,
        ),
        ParamSpec(
            "min_area_ratio",
            ParamKind.FLOAT,
            StopRule().min_area_ratio,
            "propagation stops below this area / previous area",
            minimum=0.0,
            maximum=1.0,
        ),
        ParamSpec(
            "from_index",
            ParamKind.INT,
            None,
            "propagation: the slice the previous mask lies on (enables the intensity check)",
            minimum=0,
        ),
        ParamSpec(
            "max_intensity_change",
            ParamKind.FLOAT,
            StopRule().max_intensity_change,
            "propagation stops when the mean inside moves more standard deviations than this",
            minimum=0.0,
            maximum=100.0,
        ),
        ParamSpec(
            "min_overlap",
            ParamKind.FLOAT,
            StopRule().min_overlap,
            "propagation stops below this overlap with the previous slice",
            minimum=0.0,
            maximum=1.0,
        ),
    )

    def __init__(
        self, model: LiteMedSAM | None = None, *, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> None:
        self.model = model or shared_model()
        self.cache = EmbeddingCache(max_bytes=cache_bytes)
        self._windows: dict[tuple[Any, ...], Window] = {}
        self._windows_lock = threading.Lock()

    # -- the engine protocol -------------------------------------------------------------

    def run(self, volume: Volume, request: EngineRequest) -> Proposal:
        plane = request_plane(volume, request)
        p = request.params
        window = self._window(volume, p)
        previous = plane.mask(request.previous)
        box = plane.box(request)
        info: dict[str, Any] = {}
        if p.get("propagate"):
            if previous is None or not previous.any():
                raise ValueError("propagation needs the neighbouring slice's mask as previous")
            box = _bbox(previous)
            assert box is not None
            m = float(p.get("box_margin", 1.0))
            box = (box[0] - m, box[1] - m, box[2] + m, box[3] + m)
        clicks = self._clicks(plane, request)
        logits, iou = self.logits(plane, box=box, previous=previous, window=window)
        if p.get("propagate") and previous is not None:
            # neighbouring slices look alike: favour the previous slice's shape
            prior = np.clip(mask_logits(previous, plane.spacing), -5.0, 5.0)
            logits = logits + float(p.get("prior_weight", 0.5)) * prior
        if clicks:
            logits = apply_clicks(
                logits,
                clicks,
                spacing=plane.spacing,
                reach=float(p.get("reach", DEFAULT_REACH)),
                margin=float(p.get("margin", DEFAULT_MARGIN)),
            )
        mask = logits > 0
        if iou is not None:
            info["predicted_iou"] = round(iou, 4)
        info["cache"] = {"hits": self.cache.hits, "misses": self.cache.misses}
        if p.get("propagate") and previous is not None:
            rule = StopRule(
                min_area_ratio=float(p.get("min_area_ratio", StopRule().min_area_ratio)),
                min_overlap=float(p.get("min_overlap", StopRule().min_overlap)),
                max_intensity_change=float(
                    p.get("max_intensity_change", StopRule().max_intensity_change)
                ),
            )
            expected = None
            src = p.get("from_index")
            if src is not None and 0 <= src < volume.spatial_shape[plane.axis]:
                source = plane_of(volume, plane.axis, int(src))
                expected = intensity_stats(source.image, previous)
            stop, reason = should_stop(
                mask,
                previous,
                rule,
                intensity=intensity_stats(plane.image, mask) if expected else None,
                expected=expected,
            )
            info["stop"] = stop
            info["reason"] = reason
            if stop:
                mask = np.zeros_like(mask)
        prob = (1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))).astype(np.float32)
        return Proposal.from_plane(
            mask, axis=plane.axis, index=plane.index, probability=prob, info=info
        )

    # -- building blocks (used by propagation and the benchmark) -------------------------

    def logits(
        self,
        plane: PlaneView,
        *,
        box: tuple[float, float, float, float] | None,
        previous: np.ndarray | None = None,
        window: Window | None = None,
    ) -> tuple[np.ndarray, float | None]:
        """Logits on the slice's grid for a box (or, without one, from ``previous``)."""
        if box is None:
            if previous is None or not previous.any():
                raise ValueError("give a box, or a mask on this slice to refine")
            return mask_logits(previous, plane.spacing), None
        frame = Frame.for_slice(plane.shape, plane.spacing)
        embedding = self.embedding(plane, frame, window)
        out = self.model.decode(embedding, box=frame.box_to_model(box))
        return logits_to_slice(out.logits, frame), out.iou

    def embedding(self, plane: PlaneView, frame: Frame, window: Window | None) -> Any:
        """The slice's image embedding, from the cache when the same input was seen."""
        inp = model_input(to_grey8(plane.image, plane.modality, window), frame)
        key = input_key(inp)
        emb = self.cache.get(key)
        if emb is None:
            emb = self.model.embed(inp)
            self.cache.put(key, emb)
        return emb

    def _window(self, volume: Volume, params: Any) -> Window | None:
        """The given window; else, for greyscale images other than CT, the percentiles
        of the whole volume (the same contrast on every slice, which propagation needs)."""
        c, w = params.get("window_center"), params.get("window_width")
        if c is not None and w is not None:
            return Window(float(c), float(w))
        if volume.channels != 1 or volume.modality.upper() == "CT":
            return None
        arr = volume.array
        key = (arr.__array_interface__["data"][0], arr.shape, arr.dtype.str)
        with self._windows_lock:
            hit = self._windows.get(key)
        if hit is None:
            hit = auto_window(arr)
            with self._windows_lock:
                self._windows[key] = hit
                while len(self._windows) > 64:
                    self._windows.pop(next(iter(self._windows)))
        return hit

    @staticmethod
    def _clicks(plane: PlaneView, request: EngineRequest) -> list[tuple[tuple[float, float], bool]]:
        """Clicks on this slice (others are ignored), in the order given: positives
        first, then negatives, as the request carries no interleaving."""
        out = []
        for pts, positive in ((request.positive, True), (request.negative, False)):
            for pt in pts:
                if round(pt[plane.axis]) == plane.index:
                    out.append((plane.to_plane(pt), positive))
        return out
