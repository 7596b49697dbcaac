"""Seeded region growing: the connected pixels whose (lightly smoothed) intensity stays
within a tolerance of the seed's.

Method: the image is smoothed with a Gaussian (``smoothing`` pixels, scaled by the voxel
spacing in 3D so that it is isotropic in mm), each seed's value is the smoothed value at
the seed, and the region is the connected component of ``|smoothed - seed value| <=
tolerance`` that contains the seed. Smoothing blurs boundaries, so the band alone stops
short of them: the pixels just outside it whose value is closer to the seed's than to
the mean of the pixels beyond them are added, and holes are filled. A
tolerance of 0 is adaptive: 2.5 robust standard deviations (1.4826 × median absolute
deviation) of the unsmoothed values in an 11-pixel neighbourhood of the seed: the
local noise, against which the smoothed image leaves a margin. Growth is
computed, in images larger than :data:`WINDOW_ABOVE` pixels, in a window around the seeds
that is enlarged until the region no longer touches its border, so small structures in
large volumes stay fast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from medlabel.engines.base import EngineRequest, ParamKind, ParamSpec, PromptKind, Proposal
from medlabel.engines.classical.common import (
    Window,
    bounding_window,
    describe_window,
    fill_holes,
    grow_window,
    params_of,
    plane_box,
    plane_seeds,
    slice_gray,
    summary,
    volume_box,
    volume_gray,
    volume_seeds,
)
from medlabel.imaging.volume import Volume

#: adaptive tolerance: this many robust standard deviations around the seed
ADAPTIVE_FACTOR = 2.5
#: half-width in pixels of the neighbourhood that estimates the adaptive tolerance
SPREAD_RADIUS = 5
#: images up to this many pixels are grown on whole; larger ones in a growing window
WINDOW_ABOVE = 1 << 20
#: first margin in pixels of the growth window around the seeds
FIRST_MARGIN = 32


def _validate_inputs(
    image: np.ndarray,
    seeds: Sequence[Sequence[int]],
    tolerance: float,
    connectivity: int,
    smoothing: float,
    spacing: Sequence[float] | None,
) -> None:
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"expected a non-empty 2D or 3D greyscale image, got shape {image.shape}")
    if not seeds:
        raise ValueError("region growing needs at least one seed (a positive click)")
    for s in seeds:
        if len(s) != image.ndim or not all(0 <= v < n for v, n in zip(s, image.shape, strict=True)):
            raise ValueError(f"seed {list(s)} lies outside the image of shape {list(image.shape)}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0 (0: adaptive), got {tolerance}")
    if connectivity < 1:
        raise ValueError(f"connectivity must be >= 1, got {connectivity}")
    if not smoothing >= 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}")
    if spacing is not None and (len(spacing) != image.ndim or min(spacing) <= 0):
        raise ValueError(f"spacing must be {image.ndim} positive numbers, got {list(spacing)}")


def grow_region(
    image: np.ndarray,
    seeds: Sequence[Sequence[int]],
    *,
    tolerance: float = 0.0,
    connectivity: int = 1,
    smoothing: float = 1.0,
    spacing: Sequence[float] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Grow a region from ``seeds`` over pixels of similar intensity.

    Parameters
    ----------
    image
        Greyscale ``(rows, columns)`` or ``(planes, rows, columns)``, any numeric type.
    seeds
        Pixel (voxel) indices, one tuple per seed; the region is the union of their
        regions.
    tolerance
        Largest difference from a seed's value, in image units; 0 for adaptive.
    connectivity
        Neighbours by orthogonal steps: 1 faces only, 2 also edges, 3 also corners
        (clamped to the image's dimensions).
    smoothing
        Gaussian sigma in pixels (of the finest spacing in 3D); 0 for none.
    spacing
        Pixel size per axis in mm (scales the smoothing); default isotropic.

    Returns
    -------
    mask : numpy.ndarray
        Boolean, the shape of ``image``.
    info : dict
        ``seed_values`` and ``tolerances`` used per seed.

    Raises
    ------
    ValueError
        If a seed lies outside the image, there is none, or a parameter is negative.

    Examples
    --------
    >>> img = np.zeros((6, 6)); img[1:4, 1:4] = 10.0
    >>> mask, info = grow_region(img, [(2, 2)], tolerance=2.0, smoothing=0)
    >>> int(mask.sum()), info["seed_values"]
    (9, [10.0])
    """
    _validate_inputs(image, seeds, tolerance, connectivity, smoothing, spacing)
    sp = np.ones(image.ndim) if spacing is None else np.asarray(spacing, float)
    sigma = smoothing * sp.min() / sp
    structure = ndimage.generate_binary_structure(image.ndim, min(connectivity, image.ndim))
    pad = math.ceil(4 * float(sigma.max())) + 1 if smoothing > 0 else 0
    seed_arr = np.asarray(seeds, int)
    margin = FIRST_MARGIN if image.size > WINDOW_ABOVE else max(image.shape)
    while True:
        lo = np.maximum(seed_arr.min(0) - margin, 0)
        hi = np.minimum(seed_arr.max(0) + 1 + margin, image.shape)
        window = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        mask, values, tolerances = _grow_in(
            image, window, pad, sigma, seed_arr, tolerance, structure
        )
        if not _touches_inner_border(mask, window, image.shape):
            break
        margin *= 4
    full = np.zeros(image.shape, bool)
    full[window] = mask
    info = {
        "seed_values": [round(v, 6) for v in values],
        "tolerances": [round(t, 6) for t in tolerances],
    }
    return full, info


def _grow_in(
    image: np.ndarray,
    window: Window,
    pad: int,
    sigma: np.ndarray,
    seeds: np.ndarray,
    tolerance: float,
    structure: np.ndarray,
) -> tuple[np.ndarray, list[float], list[float]]:
    outer = grow_window(window, pad, image.shape)
    data = np.asarray(image[outer], np.float32)
    if pad:
        data = ndimage.gaussian_filter(data, sigma, mode="nearest")
    inner = tuple(
        slice(w.start - o.start, w.stop - o.start) for w, o in zip(window, outer, strict=True)
    )
    data = data[inner]
    raw = image[window]
    local = seeds - np.asarray([w.start for w in window])
    mask = np.zeros(data.shape, bool)
    values, tolerances = [], []
    for seed in local:
        value = float(data[tuple(seed)])
        tol = tolerance if tolerance > 0 else _adaptive_tolerance(raw, seed, data)
        band = np.abs(data - value) <= tol
        labels, _ = ndimage.label(band, structure)
        mask |= _refine_boundary(labels == labels[tuple(seed)], data, value, structure)
        values.append(value)
        tolerances.append(tol)
    return fill_holes(mask), values, tolerances


def _refine_boundary(
    region: np.ndarray, data: np.ndarray, value: float, structure: np.ndarray
) -> np.ndarray:
    """Add the pixels just outside ``region`` whose value is closer to the seed's than
    to the mean of the pixels beyond them (5 pixels wide): smoothing blurs a boundary,
    so the tolerance band alone stops short of it."""
    window = bounding_window(region, 4)
    if window is None:
        return region
    inner, values = region[window], data[window]
    grown = ndimage.binary_dilation(inner, structure)
    beyond = ~grown
    share = ndimage.uniform_filter(beyond.astype(np.float32), 5)
    total = ndimage.uniform_filter(np.where(beyond, values, 0).astype(np.float32), 5)
    outside = total / np.maximum(share, 1e-6)
    near = grown & ~inner & (share > 0.01)
    closer = np.abs(values - value) < np.abs(values - outside)
    out = region.copy()
    out[window] = inner | (near & closer)
    return out


def _patch(centre: np.ndarray, radius: int, shape: tuple[int, ...]) -> Window:
    return tuple(
        slice(max(int(c) - radius, 0), min(int(c) + radius + 1, n))
        for c, n in zip(centre, shape, strict=True)
    )


def _adaptive_tolerance(raw: np.ndarray, seed: np.ndarray, smoothed: np.ndarray) -> float:
    """:data:`ADAPTIVE_FACTOR` robust standard deviations of the unsmoothed values
    around ``seed`` (at least a thousandth of the smoothed range)."""
    patch = np.asarray(raw[_patch(seed, SPREAD_RADIUS, raw.shape)], np.float64)
    spread = 1.4826 * float(np.median(np.abs(patch - np.median(patch))))
    span = float(smoothed.max() - smoothed.min())
    return max(ADAPTIVE_FACTOR * spread, 1e-3 * span, 1e-6)


def _touches_inner_border(mask: np.ndarray, window: Window, shape: tuple[int, ...]) -> bool:
    for axis, (w, n) in enumerate(zip(window, shape, strict=True)):
        if w.start > 0 and np.take(mask, 0, axis=axis).any():
            return True
        if w.stop < n and np.take(mask, -1, axis=axis).any():
            return True
    return False


class RegionGrowEngine:
    """Seeded region growing from positive clicks (see the module description).

    A box limits growth to the box. With ``index=None`` on a volume the region grows
    in 3D. A previous mask is accepted and ignored: the proposal is the grown region
    alone (the service merges it).
    """

    name: str = "region-grow"
    version: str = "1"
    title: str = "Region growing"
    description: str = (
        "Click inside a structure: grows over connected pixels of similar intensity "
        "(tolerance in image units, 0 = adaptive to the local noise)."
    )
    prompts: frozenset[PromptKind] = frozenset(
        {PromptKind.POSITIVE, PromptKind.BOX, PromptKind.PREVIOUS}
    )
    required: frozenset[PromptKind] = frozenset({PromptKind.POSITIVE})
    params: tuple[ParamSpec, ...] = (
        ParamSpec(
            "tolerance",
            ParamKind.FLOAT,
            0.0,
            "largest difference from the seed value, in image units (0: adaptive, "
            f"{ADAPTIVE_FACTOR}x the local spread)",
            minimum=0.0,
        ),
        ParamSpec(
            "connectivity",
            ParamKind.INT,
            1,
            "1: neighbours share a side; 2: also a corner (in 2D); 3: also a corner in 3D",
            minimum=1,
            maximum=3,
        ),
        ParamSpec(
            "smoothing", ParamKind.FLOAT, 1.0, "Gaussian sigma in pixels", minimum=0.0, maximum=10.0
        ),
    )
    volumetric: bool = True

    def run(self, volume: Volume, request: EngineRequest) -> Proposal:
        """Grow on the slice, or in 3D when ``request.index`` is None."""
        p = params_of(self.params, request)
        if request.index is None and not volume.is_2d:
            image = volume_gray(volume)
            window = volume_box(request, image.shape)
            seeds: list[tuple[int, ...]] = list(volume_seeds(request.positive, image.shape))
            mask, info = _grow(image, window, seeds, p, volume.spacing)
            return Proposal(mask=mask, info=info)
        view, image2d = slice_gray(volume, request)
        window = plane_box(view, request)
        seeds = list(plane_seeds(view, request.positive))
        mask, info = _grow(image2d, window, seeds, p, view.spacing)
        return Proposal.from_plane(mask, axis=view.axis, index=view.index, info=info)


def _grow(
    image: np.ndarray,
    box: Window | None,
    seeds: list[tuple[int, ...]],
    p: dict[str, Any],
    spacing: Sequence[float],
) -> tuple[np.ndarray, dict[str, Any]]:
    window = box or tuple(slice(0, n) for n in image.shape)
    start = [w.start for w in window]
    stop = [w.stop for w in window]
    seeds = [s for s in seeds if all(a <= v < b for v, a, b in zip(s, start, stop, strict=True))]
    if not seeds:
        raise ValueError("no positive click lies inside the box: click inside it")
    part, info = grow_region(
        image[window],
        [tuple(v - a for v, a in zip(s, start, strict=True)) for s in seeds],
        tolerance=float(p["tolerance"]),
        connectivity=int(p["connectivity"]),
        smoothing=float(p["smoothing"]),
        spacing=spacing,
    )
    mask = np.zeros(image.shape, bool)
    mask[window] = part
    info["box"] = describe_window(box)
    info["pixels"] = int(np.count_nonzero(mask))
    return mask, summary(info)
