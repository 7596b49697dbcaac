"""Random walker segmentation (Grady 2006) from object and background markers.

Each unmarked pixel gets the probability that a random walk starting there reaches an
object marker (positive clicks as discs of 2 pixels, foreground scribbles) before a
background marker (negative clicks, background scribbles, and always a border, see
below), with steps across strong intensity changes
penalised by ``beta`` (``skimage.segmentation.random_walker``). The object is where that
probability is at least 0.5, keeping the parts connected to object markers.

The walk is solved in a window: with a box, the box plus a margin, the box's border
being background; without a box but with background markers, a window around all the
markers (plus half their extent, at least 32 pixels), its border being background;
otherwise the whole image, its border being background. To stay interactive it is
solved (directly, sparse LU) on at most :data:`MAX_NODES` pixels, on a grid ``f``
times coarser (block means) when the window is larger; the probability is then
interpolated back to full resolution (bilinear), so boundaries are smooth at the scale
of ``f`` pixels. ``info["grid"]`` reports ``f``.
"""

from __future__ import annotations

import math
import warnings
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
    keep_seeded,
    params_of,
    plane_box,
    plane_markers,
    slice_gray,
    summary,
)
from medlabel.imaging.volume import Volume

#: the walk is solved on at most this many pixels
MAX_NODES = 64 * 64
#: context around a box, as a fraction of its larger side (at least 4 pixels)
BOX_MARGIN = 0.1
#: context around the markers, as a fraction of their extent (at least 32 pixels)
MARKER_MARGIN = 0.5


def _validate_inputs(image: np.ndarray, fg: np.ndarray, bg: np.ndarray, beta: float) -> None:
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"expected a non-empty 2D greyscale image, got shape {image.shape}")
    for name, marks in (("object", fg), ("background", bg)):
        if marks.shape != image.shape:
            raise ValueError(f"{name} markers have shape {marks.shape}, the image {image.shape}")
        if not marks.any():
            raise ValueError(f"the random walker needs {name} markers")
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")


def walker_probability(
    image: np.ndarray,
    object_markers: np.ndarray,
    background_markers: np.ndarray,
    *,
    beta: float = 130.0,
    sigma: float = 1.0,
    max_nodes: int = MAX_NODES,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The probability that each pixel belongs to the object, by random walks.

    Parameters
    ----------
    image
        Greyscale ``(rows, columns)``, any numeric type (the walk's edge weights are
        scaled by the image's standard deviation, so units do not matter).
    object_markers, background_markers
        Boolean masks of ``image``'s shape, each with at least one pixel; a pixel
        marked both ways counts as object.
    beta
        How strongly intensity changes stop the walk (scikit-image's default: 130).
    sigma
        Gaussian smoothing before the walk, in pixels (0: none).
    max_nodes
        Largest number of pixels the walk is solved on; larger images are solved on a
        coarser grid.

    Returns
    -------
    probability : numpy.ndarray
        ``float32`` in [0, 1], ``image``'s shape; 1 on object markers, 0 on background.
    info : dict
        ``grid``: the factor of the coarse grid (1: full resolution).

    Raises
    ------
    ValueError
        If shapes differ, either marker set is empty or ``beta`` is not positive.

    Examples
    --------
    >>> img = np.zeros((30, 30)); img[8:22, 8:22] = 100.0
    >>> fg = np.zeros(img.shape, bool); fg[15, 15] = True
    >>> bg = np.zeros(img.shape, bool); bg[0, :] = bg[-1, :] = True
    >>> prob, info = walker_probability(img, fg, bg, sigma=0)
    >>> int((prob >= 0.5).sum()), info["grid"]
    (196, 1)
    """
    _validate_inputs(image, object_markers, background_markers, beta)
    from skimage.segmentation import random_walker
    from skimage.transform import resize

    data: np.ndarray = np.asarray(image, np.float32)
    if sigma > 0:
        data = ndimage.gaussian_filter(data, sigma)
    factor = max(1, math.ceil(math.sqrt(image.size / max_nodes)))
    labels = np.where(background_markers, 2, 0).astype(np.int32)
    labels[object_markers] = 1
    if factor > 1:
        data = block_reduce(data, factor, np.add) / np.float32(factor * factor)
        labels = _block_labels(labels, factor)
    if float(np.ptp(data)) == 0.0:
        # a flat image: the walk's weights are scaled by 1 / std; a checkerboard has the
        # same step across every edge, so all weights are equal (pure diffusion)
        data = (np.indices(data.shape).sum(0) % 2).astype(np.float32)
    if not (labels == 0).any():
        coarse = (labels == 1).astype(np.float32)
    else:
        with warnings.catch_warnings():
            # "probability range outside [0, 1]" by solver tolerance: clipped below
            warnings.simplefilter("ignore", UserWarning)
            full = random_walker(data, labels, beta=beta, mode="bf", return_full_prob=True)
        coarse = np.clip(full[0], 0.0, 1.0).astype(np.float32)
    if factor > 1:
        padded = (coarse.shape[0] * factor, coarse.shape[1] * factor)
        coarse = resize(coarse, padded, order=1, mode="edge", anti_aliasing=False)
        coarse = coarse[: image.shape[0], : image.shape[1]]
    prob = np.asarray(coarse, np.float32)
    prob[background_markers] = 0.0
    prob[object_markers] = 1.0
    return prob, {"grid": factor}


def _block_labels(labels: np.ndarray, factor: int) -> np.ndarray:
    """A coarse label grid: a cell takes any label in it, object over background."""
    out = np.where(block_reduce(labels == 2, factor, np.logical_or), 2, 0).astype(np.int32)
    out[block_reduce(labels == 1, factor, np.logical_or)] = 1
    return out


class RandomWalkerEngine:
    """Random walker segmentation (see the module description).

    With a box the object is limited to the box. Without a box or background markers
    the walk covers the whole image (on a coarse grid), its border being background.
    The proposal carries the object probability. A previous mask is accepted and
    ignored: the proposal is the new region alone (the service merges it).
    """

    name: str = "random-walker"
    version: str = "1"
    title: str = "Random walker"
    description: str = (
        "Scribble or click on the structure and around it: each pixel joins the marks "
        "a random walk from it reaches first, walks being stopped by edges."
    )
    prompts: frozenset[PromptKind] = MARKER_PROMPTS
    required: frozenset[PromptKind] = OBJECT_MARKERS
    params: tuple[ParamSpec, ...] = (
        ParamSpec(
            "beta",
            ParamKind.FLOAT,
            130.0,
            "how strongly edges stop the walk",
            minimum=1.0,
            maximum=10000.0,
        ),
        ParamSpec(
            "sigma",
            ParamKind.FLOAT,
            1.0,
            "smoothing in pixels before the walk",
            minimum=0.0,
            maximum=10.0,
        ),
    )
    volumetric: bool = False

    def run(self, volume: Volume, request: EngineRequest) -> Proposal:
        """Segment the request's slice from its markers."""
        p = params_of(self.params, request)
        view, image = slice_gray(volume, request)
        fg, bg = plane_markers(view, request)
        box = plane_box(view, request)
        region, border = _work_region(image.shape, box, fg, bg)
        fg_r, bg_r = fg[region], bg[region]
        if not fg_r.any():
            raise ValueError("no positive click or foreground scribble lies inside the box")
        background = f"markers + {border}" if bg_r.any() else border
        bg_r = bg_r | border_background(fg_r, region, box)
        part, info = walker_probability(
            image[region], fg_r, bg_r, beta=float(p["beta"]), sigma=float(p["sigma"])
        )
        prob = np.zeros(image.shape, np.float32)
        prob[region] = part
        if box is not None:
            prob *= inside(image.shape, box)
        mask = keep_seeded(prob >= 0.5, fg)
        info.update(
            background=background,
            box=describe_window(box),
            region=describe_window(region),
            pixels=int(np.count_nonzero(mask)),
        )
        return Proposal.from_plane(
            mask, axis=view.axis, index=view.index, probability=prob, info=summary(info)
        )


def _work_region(
    shape: tuple[int, ...], box: Window | None, fg: np.ndarray, bg: np.ndarray
) -> tuple[Window, str]:
    """The pixels the walk is solved on (the box, the image, or with background markers
    a window around all markers) and the border that is background."""
    if box is not None:
        margin = max(4, round(BOX_MARGIN * max(s.stop - s.start for s in box)))
        return grow_window(box, margin, shape), "box border"
    if not bg.any():
        return tuple(slice(0, n) for n in shape), "image border"
    around = bounding_window(fg | bg, 0)
    assert around is not None  # bg is not empty
    extent = max(s.stop - s.start for s in around)
    return grow_window(around, max(32, round(MARKER_MARGIN * extent)), shape), "window border"
