"""Marker-based watershed on the gradient magnitude.

Object markers (positive clicks as small discs, foreground scribbles) and background
markers (negative clicks, background scribbles, and always the border of the box, or of
the image without a box) flood the gradient magnitude; the object is what its markers
reach first. The border is background even when background markers are given: a
negative click on a neighbouring structure would otherwise hand the rest of the image
to the object.

Large regions are flooded coarse to fine: once on a grid ``f`` times coarser (the
gradient's block maximum, so thin edges survive), then again at full resolution in a band
of two coarse cells either side of the coarse boundary only. The result equals a
full-resolution flood unless the coarse grid merges two edges closer than ``f`` pixels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from medlabel.engines.base import EngineRequest, ParamKind, ParamSpec, PromptKind, Proposal
from medlabel.engines.classical.common import (
    MARKER_PROMPTS,
    OBJECT_MARKERS,
    Window,
    block_reduce,
    border_background,
    bounding_window,
    describe_window,
    grow_window,
    inside,
    params_of,
    plane_box,
    plane_markers,
    slice_gray,
    summary,
    upsample,
)
from medlabel.imaging.volume import Volume

#: regions larger than this many pixels are flooded coarse to fine
COARSE_LIMIT = 256 * 256
#: pixels of context kept around a box
BOX_MARGIN = 4

OBJECT, BACKGROUND = 1, 2


def _validate_inputs(image: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> None:
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"expected a non-empty 2D greyscale image, got shape {image.shape}")
    for name, marks in (("object", fg), ("background", bg)):
        if marks.shape != image.shape:
            raise ValueError(f"{name} markers have shape {marks.shape}, the image {image.shape}")
        if not marks.any():
            raise ValueError(f"the watershed needs {name} markers")


def gradient_magnitude(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gradient magnitude (central differences) of a Gaussian-smoothed ``image``
    (``sigma`` pixels; 0: no smoothing), scaled so that its 99th percentile is 1
    (``float32``).

    Examples
    --------
    >>> img = np.zeros((5, 8)); img[:, 4:] = 100.0
    >>> g = gradient_magnitude(img, 1.0)
    >>> bool(g[2, 3] > g[2, 0])
    True
    """
    data = np.asarray(image, np.float32)
    if sigma > 0:
        data = ndimage.gaussian_filter(data, sigma)
    if min(data.shape) < 2:
        return np.zeros(data.shape, np.float32)
    grad = np.hypot(*np.gradient(data))
    scale = float(np.percentile(grad[::4, ::4], 99))
    if scale <= 0:
        scale = float(grad.max()) or 1.0
    out: np.ndarray = (grad / scale).astype(np.float32)
    return out


def marker_watershed(
    image: np.ndarray,
    object_markers: np.ndarray,
    background_markers: np.ndarray,
    *,
    sigma: float = 1.0,
    compactness: float = 0.0,
    coarse_limit: int = COARSE_LIMIT,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The object region of a marker-based watershed on ``image``'s gradient.

    Parameters
    ----------
    image
        Greyscale ``(rows, columns)``, any numeric type.
    object_markers, background_markers
        Boolean masks of ``image``'s shape, each with at least one pixel; a pixel
        marked both ways counts as object.
    sigma
        Gaussian smoothing of the gradient, in pixels (0: none).
    compactness
        Pull towards compact, marker-centred regions (``skimage.segmentation.watershed``;
        the gradient is scaled to a 99th percentile of 1, so values around 0.001-0.1
        are useful). On a coarse grid it applies to the coarse flood.
    coarse_limit
        Images larger than this many pixels are flooded coarse to fine.

    Returns
    -------
    mask : numpy.ndarray
        Boolean object region, ``image``'s shape.
    info : dict
        ``grid``: the coarse grid's factor (1: flooded at full resolution).

    Raises
    ------
    ValueError
        If shapes differ or either marker set is empty.

    Examples
    --------
    >>> img = np.zeros((40, 40)); img[10:30, 10:30] = 50.0
    >>> fg = np.zeros(img.shape, bool); fg[20, 20] = True
    >>> bg = np.zeros(img.shape, bool); bg[0, :] = True
    >>> mask, info = marker_watershed(img, fg, bg)
    >>> int(mask.sum()), info["grid"]  # the 20 x 20 square less its 4 corner pixels
    (396, 1)
    """
    _validate_inputs(image, object_markers, background_markers)
    from skimage.segmentation import watershed

    grad = gradient_magnitude(image, sigma)
    markers = np.where(background_markers, BACKGROUND, 0).astype(np.int32)
    markers[object_markers] = OBJECT
    factor = max(1, math.ceil(math.sqrt(image.size / coarse_limit)))
    if factor == 1:
        labels = watershed(grad, markers, compactness=compactness)
        return labels == OBJECT, {"grid": 1}
    coarse = watershed(
        block_reduce(grad, factor, np.maximum),
        _block_markers(markers, factor),
        compactness=compactness * factor,
    )
    # refine in a band of 2 coarse cells either side of the coarse boundary, seeded by
    # the coarse labels of the cell ring around it
    obj = (coarse == OBJECT).view(np.uint8)
    band = ndimage.maximum_filter(obj, 5) != ndimage.minimum_filter(obj, 5)
    ring = ndimage.maximum_filter(band.view(np.uint8), 3).view(bool)
    up = upsample(coarse, factor, image.shape)
    cells = bounding_window(ring, 0)
    if cells is None:  # no boundary: one label everywhere
        return up == OBJECT, {"grid": factor}
    # the fine flood only where the ring is, in its bounding box
    box = tuple(
        slice(c.start * factor, min(c.stop * factor, n))
        for c, n in zip(cells, image.shape, strict=True)
    )
    size = tuple(b.stop - b.start for b in box)
    band_up = upsample(band[cells], factor, size)
    ring_up = upsample(ring[cells], factor, size)
    fine = np.where(band_up, 0, up[box]).astype(np.int32)
    given = markers[box] > 0
    fine[given] = markers[box][given]
    refined = watershed(grad[box], fine, mask=ring_up)
    up[box] = np.where(ring_up, refined, up[box])
    return up == OBJECT, {"grid": factor}


def _block_markers(markers: np.ndarray, factor: int) -> np.ndarray:
    """A coarse marker grid: a cell takes any label in it, object over background."""
    has_obj = block_reduce(markers == OBJECT, factor, np.logical_or)
    has_bg = block_reduce(markers == BACKGROUND, factor, np.logical_or)
    out = np.where(has_bg, BACKGROUND, 0).astype(np.int32)
    out[has_obj] = OBJECT
    return out


class WatershedEngine:
    """Marker-based watershed (see the module description).

    With a box the flood is limited to the box (plus a few pixels of context) and the
    object to the box. A previous mask is accepted and ignored: the proposal is the
    watershed's object alone (the service merges it).
    """

    name: str = "watershed"
    version: str = "1"
    title: str = "Watershed"
    description: str = (
        "Click or scribble on the structure (and optionally outside it): the structure "
        "grows from your marks up to the strongest edges."
    )
    prompts: frozenset[PromptKind] = MARKER_PROMPTS
    required: frozenset[PromptKind] = OBJECT_MARKERS
    params: tuple[ParamSpec, ...] = (
        ParamSpec(
            "compactness",
            ParamKind.FLOAT,
            0.0,
            "pull towards compact regions (0: follow edges only; try 0.001-0.1)",
            minimum=0.0,
            maximum=10.0,
        ),
        ParamSpec(
            "sigma", ParamKind.FLOAT, 1.0, "gradient smoothing in pixels", minimum=0.0, maximum=10.0
        ),
    )
    volumetric: bool = False

    def run(self, volume: Volume, request: EngineRequest) -> Proposal:
        """Flood the request's slice from its markers."""
        p = params_of(self.params, request)
        view, image = slice_gray(volume, request)
        fg, bg = plane_markers(view, request)
        box = plane_box(view, request)
        region, border = _work_region(image.shape, box)
        fg_r, bg_r = fg[region], bg[region]
        if not fg_r.any():
            raise ValueError("no positive click or foreground scribble lies inside the box")
        background = f"markers + {border}" if bg_r.any() else border
        bg_r = bg_r | border_background(fg_r, region, box)
        part, info = marker_watershed(
            image[region],
            fg_r,
            bg_r,
            sigma=float(p["sigma"]),
            compactness=float(p["compactness"]),
        )
        mask = np.zeros(image.shape, bool)
        mask[region] = part
        if box is not None:
            mask &= inside(image.shape, box)
        info.update(
            background=background,
            box=describe_window(box),
            region=describe_window(region),
            pixels=int(np.count_nonzero(mask)),
        )
        return Proposal.from_plane(mask, axis=view.axis, index=view.index, info=summary(info))


def _work_region(shape: tuple[int, ...], box: Window | None) -> tuple[Window, str]:
    """The pixels flooded and the border that is background."""
    if box is not None:
        return grow_window(box, BOX_MARGIN, shape), "box border"
    return tuple(slice(0, n) for n in shape), "image border"
