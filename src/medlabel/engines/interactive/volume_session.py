"""An interactive session on a volume: a 3D box starts it, clicks correct it in 3D.

The box's middle rectangle is segmented on one slice and propagated slice by slice
through the box's extent; the slices' logits are stacked into a volume, so a click
corrects the structure in 3D (a bump in the logits reaching the neighbouring slices),
not one slice at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from medlabel.engines import runner
from medlabel.engines.base import AnnotationEngine, EngineRequest, Point, Proposal
from medlabel.engines.interactive.corrections import DEFAULT_MARGIN, apply_clicks
from medlabel.engines.interactive.propagation import Bounds, steps
from medlabel.imaging.volume import Volume

#: logit of voxels no slice answered for (far outside)
OUTSIDE = -10.0


def _logits(proposal: Proposal, shape: tuple[int, int, int]) -> np.ndarray:
    """The proposal's probabilities as logits on the full grid (``OUTSIDE`` elsewhere)."""
    out = np.full(shape, OUTSIDE, np.float32)
    prob = proposal.probability
    sl = tuple(slice(o, o + n) for o, n in zip(proposal.origin, proposal.mask.shape, strict=True))
    if prob is None:
        out[sl] = np.where(proposal.mask, -OUTSIDE, OUTSIDE)
    else:
        p = np.clip(prob, 1e-6, 1 - 1e-6)
        out[sl] = np.log(p / (1 - p))
    return out


class VolumeSession:
    """Box → propagated 3D mask → click corrections, for one structure in a volume.

    Parameters
    ----------
    engine
        A promptable engine with a ``propagate`` parameter (``litemedsam``).
    volume
        The image volume.
    axis
        The array axis to walk along (slices are cut across it).
    params
        Engine parameters for every request (e.g. a window).
    reach, margin
        Click correction strength (see :func:`~.corrections.apply_clicks`).
    """

    def __init__(
        self,
        engine: AnnotationEngine,
        volume: Volume,
        *,
        axis: int = 0,
        params: Mapping[str, Any] | None = None,
        reach: float = 0.3,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        self.engine = engine
        self.volume = volume
        self.axis = axis
        self.params = dict(params or {})
        self.reach = reach
        self.margin = margin
        self._base = np.full(volume.spatial_shape, OUTSIDE, np.float32)
        self._clicks: list[tuple[Point, bool]] = []
        self.mask = np.zeros(volume.spatial_shape, bool)

    def start(self, box: tuple[Point, Point], *, index: int | None = None) -> np.ndarray:
        """Segment the structure inside the 3D ``box`` (two voxel corners).

        ``index`` is the slice to prompt first (default: the box's middle slice); the
        mask is propagated from it through the box's slices.
        """
        a, b = np.minimum(box[0], box[1]), np.maximum(box[0], box[1])
        if index is None:
            index = round(float(a[self.axis] + b[self.axis]) / 2)
        corners = []
        for c in (a, b):
            p = [float(v) for v in c]
            p[self.axis] = float(index)
            corners.append((p[0], p[1], p[2]))
        first = runner.run(
            self.engine,
            self.volume,
            EngineRequest(
                axis=self.axis, index=index, box=(corners[0], corners[1]), params=self.params
            ),
        )
        shape = self.volume.spatial_shape
        base = _logits(first, shape)
        mask = first.full(shape)
        bounds: Bounds = (tuple(map(float, a)), tuple(map(float, b)))  # type: ignore[assignment]
        for direction in (1, -1):
            walk = steps(
                self.engine,
                self.volume,
                mask,
                axis=self.axis,
                index=index,
                direction=direction,
                params=self.params,
                bounds=bounds,
            )
            for step in walk:
                if not step.stop:
                    _put_slice(base, _logits(step.proposal, shape), self.axis, step.index)
        self._base = base
        self._clicks = []
        self.mask = base > 0
        return self.mask

    def click(self, point: Point, positive: bool) -> np.ndarray:
        """Correct the mask with a click; returns the new mask."""
        self._clicks.append((point, positive))
        logits = apply_clicks(
            self._base,
            self._clicks,
            spacing=self.volume.spacing,
            reach=self.reach,
            margin=self.margin,
        )
        self.mask = logits > 0
        return self.mask


def _put_slice(dst: np.ndarray, src: np.ndarray, axis: int, k: int) -> None:
    idx: list[Any] = [slice(None)] * 3
    idx[axis] = k
    dst[tuple(idx)] = src[tuple(idx)]
