"""Edge-aware fill: flood from a click up to the Canny edges around it.

Canny's edges are thin lines connected through sides or corners; the fill spreads
through sides only, so it cannot slip diagonally through an edge line. Canny breaks its
lines where edges meet, so the edges are first thickened by ``close`` pixels (closing
gaps up to twice that wide); the filled region then grows back up to the edge lines and
its holes are filled. An edge contour with a gap
lets the fill leak: a fill larger than ``max_fraction`` of the slice is refused (empty
mask and ``info["warning"]``) instead of returning most of the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from medlabel.engines.base import EngineRequest, ParamKind, ParamSpec, PromptKind, Proposal
from medlabel.engines.classical.common import (
    Window,
    describe_window,
    fill_holes,
    grow_window,
    inside,
    params_of,
    plane_box,
    plane_seeds,
    slice_gray,
    summary,
    touching,
)
from medlabel.imaging.volume import Volume

#: a click on an edge moves to the nearest pixel off the edges within this distance
SNAP_RADIUS = 3
#: pixels of context around a box for the edge detector
BOX_MARGIN = 8

_FACES = ndimage.generate_binary_structure(2, 1)


def _validate_inputs(
    image: np.ndarray, seeds: Sequence[tuple[int, int]], low: float, high: float, close: int
) -> None:
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"expected a non-empty 2D greyscale image, got shape {image.shape}")
    if not seeds:
        raise ValueError("edge fill needs at least one seed (a positive click)")
    for seed in seeds:
        if len(seed) != 2 or not all(0 <= v < n for v, n in zip(seed, image.shape, strict=True)):
            raise ValueError(
                f"seed {list(seed)} lies outside the image of shape {list(image.shape)}"
            )
    if not 0 <= low <= high <= 1:
        raise ValueError(f"need 0 <= low <= high <= 1 (quantiles), got low={low}, high={high}")
    if close < 0:
        raise ValueError(f"close must be >= 0 pixels, got {close}")


def edge_fill(
    image: np.ndarray,
    seeds: Sequence[tuple[int, int]],
    *,
    sigma: float = 2.0,
    low: float = 0.7,
    high: float = 0.9,
    close: int = 1,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The regions around ``seeds`` enclosed by Canny edges.

    Parameters
    ----------
    image
        Greyscale ``(rows, columns)``, any numeric type.
    seeds
        ``(row, column)`` of each click; the result is the union of their regions.
    sigma
        Gaussian smoothing of the edge detector, in pixels.
    low, high
        Hysteresis thresholds as quantiles of the gradient magnitude (0..1): edges
        start above ``high`` and continue above ``low``.
    close
        Edges are thickened by this many pixels on each side before filling, so gaps
        up to ``2 * close`` pixels wide (Canny breaks its lines where edges meet) do not
        let the fill leak; the fill then grows back up to the edge lines.
    allowed
        Optional boolean mask (e.g. a box) outside which nothing is filled.

    Returns
    -------
    mask : numpy.ndarray
        Boolean, ``image``'s shape.
    info : dict
        ``edge_pixels`` found and ``seeds`` used (moved off an edge if needed);
        ``warning`` if a seed sits in a thicket of edges (it is skipped).

    Raises
    ------
    ValueError
        If there is no seed, one lies outside the image or the quantiles are out of
        order.

    Examples
    --------
    >>> img = np.zeros((40, 40)); img[10:30, 10:30] = 100.0
    >>> mask, info = edge_fill(img, [(20, 20)], sigma=1.0)
    >>> int(mask[10:30, 10:30].sum()), int(mask.sum())  # the square less its corners
    (388, 388)
    """
    _validate_inputs(image, seeds, low, high, close)
    from skimage.feature import canny

    data = np.asarray(image, np.float32)
    if float(data.max()) == float(data.min()):
        edges = np.zeros(data.shape, bool)
    else:
        edges = canny(data, sigma, low, high, use_quantiles=True)
    thick = (
        ndimage.maximum_filter(edges.view(np.uint8), 2 * close + 1).view(bool) if close else edges
    )
    walls = thick if allowed is None else thick | ~allowed
    starts = [_snap(walls, seed) for seed in seeds]
    used = [s for s in starts if s is not None]
    info: dict[str, Any] = {"edge_pixels": int(edges.sum()), "seeds": [list(s) for s in used]}
    if len(used) < len(starts):
        info["warning"] = "a click lies on edges and was skipped: click inside the structure"
    if not used:
        return np.zeros(data.shape, bool), info
    labels, _ = ndimage.label(~walls, _FACES)
    region = np.isin(labels, sorted({int(labels[s]) for s in used}))
    for _ in range(close + 1):
        region |= touching(region, thick)
    if allowed is not None:
        region &= allowed
    return fill_holes(region), info


def _snap(walls: np.ndarray, seed: tuple[int, int]) -> tuple[int, int] | None:
    """The pixel off the walls nearest to ``seed`` (within :data:`SNAP_RADIUS`)."""
    if not walls[seed]:
        return seed
    r0, c0 = max(seed[0] - SNAP_RADIUS, 0), max(seed[1] - SNAP_RADIUS, 0)
    patch = walls[r0 : seed[0] + SNAP_RADIUS + 1, c0 : seed[1] + SNAP_RADIUS + 1]
    free = np.argwhere(~patch) + np.asarray([r0, c0])
    if len(free) == 0:
        return None
    d = ((free - np.asarray(seed)) ** 2).sum(1)
    k = int(np.argmin(d))
    if d[k] > SNAP_RADIUS**2:
        return None
    return int(free[k, 0]), int(free[k, 1])


class EdgeFillEngine:
    """Edge-aware fill from a positive click (see the module description).

    Several clicks fill several regions. With a box, edges are found in the box (plus
    context) and the fill stays inside it. A previous mask is accepted and ignored: the
    proposal is the filled region alone (the service merges it).
    """

    name: str = "edge-fill"
    version: str = "1"
    title: str = "Edge-aware fill"
    description: str = (
        "Click inside a structure with a clear outline: fills up to the edges around "
        "the click, and refuses when the outline has gaps and the fill leaks."
    )
    prompts: frozenset[PromptKind] = frozenset(
        {PromptKind.POSITIVE, PromptKind.BOX, PromptKind.PREVIOUS}
    )
    required: frozenset[PromptKind] = frozenset({PromptKind.POSITIVE})
    params: tuple[ParamSpec, ...] = (
        ParamSpec("sigma", ParamKind.FLOAT, 2.0, "edge detector smoothing in pixels", 0.5, 10.0),
        ParamSpec("low", ParamKind.FLOAT, 0.7, "weak-edge threshold (gradient quantile)", 0.0, 1.0),
        ParamSpec(
            "high", ParamKind.FLOAT, 0.9, "strong-edge threshold (gradient quantile)", 0.0, 1.0
        ),
        ParamSpec(
            "close", ParamKind.INT, 1, "close gaps in the edges up to 2x this many pixels", 0, 3
        ),
        ParamSpec(
            "max_fraction",
            ParamKind.FLOAT,
            0.5,
            "refuse fills larger than this fraction of the slice",
            0.0,
            1.0,
        ),
    )
    volumetric: bool = False

    def run(self, volume: Volume, request: EngineRequest) -> Proposal:
        """Fill from each positive click on the request's slice."""
        p = params_of(self.params, request)
        view, image = slice_gray(volume, request)
        box = plane_box(view, request)
        seeds = plane_seeds(view, request.positive)
        if box is None:
            region: Window = (slice(0, image.shape[0]), slice(0, image.shape[1]))
            allowed = None
        else:
            seeds = [
                s for s in seeds if all(b.start <= v < b.stop for v, b in zip(s, box, strict=True))
            ]
            if not seeds:
                raise ValueError("no positive click lies inside the box: click inside it")
            region = grow_window(box, BOX_MARGIN, image.shape)
            allowed = inside(image.shape, box)[region]
        origin = (region[0].start, region[1].start)
        part, info = edge_fill(
            image[region],
            [(r - origin[0], c - origin[1]) for r, c in seeds],
            sigma=float(p["sigma"]),
            low=float(p["low"]),
            high=float(p["high"]),
            close=int(p["close"]),
            allowed=allowed,
        )
        mask = np.zeros(image.shape, bool)
        mask[region] = part
        fraction = float(mask.mean())
        limit = float(p["max_fraction"])
        info.pop("seeds")
        info.update(fraction=round(fraction, 6), box=describe_window(box))
        if fraction > limit:
            refusal = (
                f"the fill covered {fraction:.0%} of the slice, more than max_fraction "
                f"({limit:.0%}): the outline around the click has gaps. Draw a box, raise "
                "sigma or lower the low/high quantiles."
            )
            info["warning"] = " ".join(w for w in (info.get("warning"), refusal) if w)
            mask[:] = False
        info["pixels"] = int(np.count_nonzero(mask))
        return Proposal.from_plane(mask, axis=view.axis, index=view.index, info=summary(info))
