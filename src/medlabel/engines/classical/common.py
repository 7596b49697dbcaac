"""Helpers shared by the classical engines: grey images, prompts as pixels, windows.

Images become ``float32`` greyscale: colour images their Rec. 709 luminance, CT values
below -1024 HU (padding outside the scanner's field of view) are raised to -1024 HU so
that they count as air rather than as a class or an edge of their own. Prompts are
voxel coordinates ``(plane, row, column)`` with voxel centres at integers; a per-slice
engine projects them onto its slice (the coordinate along the slice axis is ignored).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from medlabel.engines.base import EngineRequest, ParamSpec, Point, PromptKind
from medlabel.engines.planes import PlaneView, request_plane
from medlabel.imaging.volume import Volume

#: Rec. 709 luma weights of red, green and blue
LUMA = (0.2126, 0.7152, 0.0722)
#: the lowest CT value treated as an intensity (air); lower values are padding
CT_FLOOR = -1024.0

#: what marker-based tools (watershed, random walker) take: clicks and scribbles on and
#: around the object, a box, the current mask (ignored: the service merges)
MARKER_PROMPTS = frozenset(
    {
        PromptKind.POSITIVE,
        PromptKind.NEGATIVE,
        PromptKind.FOREGROUND,
        PromptKind.BACKGROUND,
        PromptKind.BOX,
        PromptKind.PREVIOUS,
    }
)
#: at least one mark on the object is required
OBJECT_MARKERS = frozenset({PromptKind.POSITIVE, PromptKind.FOREGROUND})

Window = tuple[slice, ...]


def _validate_inputs(image: np.ndarray, channels: int) -> None:
    if channels not in (1, 3, 4):
        raise ValueError(f"channels must be 1, 3 or 4, got {channels}")
    if channels > 1 and (image.ndim < 3 or image.shape[-1] != channels):
        raise ValueError(f"expected a last axis of {channels} channels, got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"the image is empty: shape {image.shape}")


def to_gray(image: np.ndarray, *, channels: int = 1, modality: str = "OT") -> np.ndarray:
    """A ``float32`` greyscale copy of ``image``.

    Parameters
    ----------
    image
        Pixel values, any integer or float type; with ``channels`` > 1 the last axis
        holds the channels (RGB, or RGBA whose alpha is ignored), with 1 there is no
        channel axis.
    channels
        1 for greyscale, 3 or 4 for colour.
    modality
        DICOM modality; for ``CT`` values below -1024 HU are raised to -1024 HU.

    Returns
    -------
    numpy.ndarray
        ``float32``, the shape of ``image`` without the channel axis. Non-finite
        values become the lowest finite value.

    Raises
    ------
    ValueError
        If the channel axis does not match ``channels`` or the image is empty.

    Examples
    --------
    >>> to_gray(np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8), channels=3).round(2)
    array([[54.21, 18.41]], dtype=float32)
    >>> to_gray(np.array([-3024, -1000, 40], np.int16), modality="CT")
    array([-1024., -1000.,    40.], dtype=float32)
    """
    _validate_inputs(image, channels)
    gray: np.ndarray
    if channels > 1:
        rgb = np.asarray(image[..., :3], dtype=np.float32)
        gray = rgb[..., 0] * LUMA[0] + rgb[..., 1] * LUMA[1] + rgb[..., 2] * LUMA[2]
    else:
        gray = np.array(image, dtype=np.float32, copy=True)
    if modality.upper() == "CT":
        np.maximum(gray, CT_FLOOR, out=gray)
    if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(gray)):
        finite = gray[np.isfinite(gray)]
        gray[~np.isfinite(gray)] = finite.min() if finite.size else 0.0
    return gray


def params_of(specs: Iterable[ParamSpec], request: EngineRequest) -> dict[str, Any]:
    """The request's parameters over the specs' defaults (the runner fills these
    already; engines called directly get the same defaults)."""
    out: dict[str, Any] = {spec.name: spec.default for spec in specs}
    out.update(request.params)
    return out


def slice_gray(volume: Volume, request: EngineRequest) -> tuple[PlaneView, np.ndarray]:
    """The request's slice and its greyscale image (see :func:`to_gray`)."""
    view = request_plane(volume, request)
    image = view.image[..., 0] if volume.array.ndim == 4 and volume.channels == 1 else view.image
    gray = to_gray(image, channels=volume.channels, modality=volume.modality)
    if gray.ndim != 2:
        raise ValueError(f"expected a 2D slice, got shape {gray.shape}")
    return view, gray


def volume_gray(volume: Volume) -> np.ndarray:
    """The whole volume as greyscale ``(planes, rows, columns)`` (see :func:`to_gray`)."""
    array = volume.array
    if array.ndim == 4 and volume.channels == 1:
        array = array[..., 0]
    return to_gray(array, channels=volume.channels, modality=volume.modality)


def to_index(value: float, size: int) -> int:
    """A continuous voxel coordinate as the index of the voxel containing it."""
    return min(max(math.floor(value + 0.5), 0), size - 1)


def plane_seeds(view: PlaneView, points: Sequence[Point]) -> list[tuple[int, int]]:
    """Clicks as ``(row, column)`` pixel indices on ``view``."""
    rows, cols = view.shape
    out = []
    for p in points:
        r, c = view.to_plane(p)
        out.append((to_index(r, rows), to_index(c, cols)))
    return out


def volume_seeds(points: Sequence[Point], shape: Sequence[int]) -> list[tuple[int, int, int]]:
    """Clicks as ``(plane, row, column)`` voxel indices."""
    return [
        (to_index(p[0], shape[0]), to_index(p[1], shape[1]), to_index(p[2], shape[2]))
        for p in points
    ]


def plane_box(view: PlaneView, request: EngineRequest) -> Window | None:
    """The request's box on ``view`` as ``(rows, columns)`` slices, corners included."""
    box = view.box(request)
    if box is None:
        return None
    r0, c0, r1, c1 = box
    rows, cols = view.shape
    return (
        slice(to_index(r0, rows), to_index(r1, rows) + 1),
        slice(to_index(c0, cols), to_index(c1, cols) + 1),
    )


def volume_box(request: EngineRequest, shape: Sequence[int]) -> Window | None:
    """The request's box as ``(planes, rows, columns)`` slices, corners included."""
    if request.box is None:
        return None
    a, b = request.box
    return tuple(
        slice(to_index(min(a[i], b[i]), shape[i]), to_index(max(a[i], b[i]), shape[i]) + 1)
        for i in range(3)
    )


def inside(shape: Sequence[int], window: Window | None) -> np.ndarray:
    """A boolean array of ``shape``, true inside ``window`` (everywhere if None)."""
    if window is None:
        return np.ones(tuple(shape), bool)
    out = np.zeros(tuple(shape), bool)
    out[window] = True
    return out


def outline(shape: Sequence[int], window: Window) -> np.ndarray:
    """The one-pixel border of a 2D ``window`` (a box, or the whole image) as a mask.

    Examples
    --------
    >>> outline((4, 5), (slice(1, 4), slice(0, 3))).astype(int)
    array([[0, 0, 0, 0, 0],
           [1, 1, 1, 0, 0],
           [1, 0, 1, 0, 0],
           [1, 1, 1, 0, 0]])
    """
    out = np.zeros(tuple(shape), bool)
    (r, c) = window
    rows, cols = range(*r.indices(shape[0])), range(*c.indices(shape[1]))
    if len(rows) and len(cols):
        out[rows[0], c] = out[rows[-1], c] = True
        out[r, cols[0]] = out[r, cols[-1]] = True
    return out


def discs(shape: Sequence[int], centres: Iterable[Sequence[int]], radius: int) -> np.ndarray:
    """A boolean mask of ``shape`` with a disc (ball in 3D) of ``radius`` pixels around
    each centre; ``radius`` 0 marks the centre pixels alone.

    Examples
    --------
    >>> discs((5, 5), [(2, 2)], 1).astype(int)
    array([[0, 0, 0, 0, 0],
           [0, 0, 1, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 1, 0, 0],
           [0, 0, 0, 0, 0]])
    """
    out = np.zeros(tuple(shape), bool)
    offsets = np.argwhere(np.ones((2 * radius + 1,) * len(shape), bool)) - radius
    offsets = offsets[(offsets**2).sum(1) <= radius * radius]
    hi = np.asarray(shape) - 1
    for centre in centres:
        idx = np.clip(np.asarray(centre) + offsets, 0, hi)
        out[tuple(idx.T)] = True
    return out


def plane_markers(
    view: PlaneView, request: EngineRequest, *, radius: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Object and background markers on ``view``: positive (negative) clicks as discs of
    ``radius`` pixels joined with the foreground (background) scribbles. A pixel marked
    both ways counts as object."""
    fg = discs(view.shape, plane_seeds(view, request.positive), radius)
    bg = discs(view.shape, plane_seeds(view, request.negative), radius)
    for marks, scribble in ((fg, request.foreground), (bg, request.background)):
        plane = view.mask(scribble)
        if plane is not None:
            marks |= plane
    bg &= ~fg
    return fg, bg


def keep_seeded(
    mask: np.ndarray, seeds: Sequence[Sequence[int]] | np.ndarray, connectivity: int = 1
) -> np.ndarray:
    """The connected components of ``mask`` that contain at least one seed.

    ``seeds`` are pixel indices (one per row) or a boolean array of ``mask``'s shape;
    ``connectivity`` is the number of orthogonal steps to a neighbour (1: faces only).

    Examples
    --------
    >>> m = np.array([[1, 1, 0, 1], [0, 0, 0, 1]], bool)
    >>> keep_seeded(m, [(1, 3)]).astype(int)
    array([[0, 0, 0, 1],
           [0, 0, 0, 1]])
    """
    structure = ndimage.generate_binary_structure(mask.ndim, connectivity)
    labels, _ = ndimage.label(mask, structure)
    marks = np.asarray(seeds)
    if marks.dtype == bool:
        hit = labels[marks]
    elif marks.size:
        hit = labels[tuple(marks.reshape(-1, mask.ndim).T)]
    else:
        hit = np.zeros(0, labels.dtype)
    wanted = np.unique(hit[hit > 0])
    if wanted.size == 0:
        return np.zeros(mask.shape, bool)
    return np.isin(labels, wanted)


def border_background(fg: np.ndarray, region: Window, box: Window | None) -> np.ndarray:
    """Background markers along a border: the border of ``box`` (or of the whole
    ``region`` without a box) less the object markers ``fg``, all in the coordinates of
    ``region`` (``fg`` covers ``region``; ``box`` lies within it)."""
    border = box if box is not None else region
    local = tuple(
        slice(b.start - r.start, b.stop - r.start) for b, r in zip(border, region, strict=True)
    )
    out: np.ndarray = outline(fg.shape, local) & ~fg
    return out


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its holes filled (``scipy.ndimage.binary_fill_holes`` on its
    bounding box only, which is faster for small regions).

    Examples
    --------
    >>> ring = np.pad(np.ones((3, 3), bool), 1); ring[2, 2] = False
    >>> int(fill_holes(ring).sum())
    9
    """
    window = bounding_window(mask, 0)
    if window is None:
        return mask
    out = mask.copy()
    out[window] = ndimage.binary_fill_holes(mask[window])
    return out


def touching(mask: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The pixels of ``other`` that share a side with a pixel of ``mask`` (2D).

    Examples
    --------
    >>> m = np.array([[0, 1, 0]], bool)
    >>> touching(m, np.ones((1, 3), bool)).astype(int)
    array([[1, 0, 1]])
    """
    grown = np.zeros(mask.shape, bool)
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    out: np.ndarray = grown & other & ~mask
    return out


def bounding_window(mask: np.ndarray, margin: int) -> Window | None:
    """The bounding box of ``mask`` grown by ``margin`` pixels on each side and clipped
    to the array, as slices; None for an empty mask.

    Examples
    --------
    >>> bounding_window(np.eye(6, dtype=bool)[1:3], 1)
    (slice(0, 2, None), slice(0, 4, None))
    """
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return None
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + 1 + margin, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def grow_window(window: Window, margin: int, shape: Sequence[int]) -> Window:
    """``window`` grown by ``margin`` pixels on each side, clipped to ``shape``."""
    return tuple(
        slice(max(int(s.start) - margin, 0), min(int(s.stop) + margin, int(n)))
        for s, n in zip(window, shape, strict=True)
    )


def block_reduce(array: np.ndarray, factor: int, ufunc: np.ufunc) -> np.ndarray:
    """Reduce ``factor`` × ``factor`` blocks of a 2D array with a binary ``ufunc``
    (``np.maximum``, ``np.add``, ``np.logical_or``...); the array is padded at its
    end by repeating its edge to a multiple of ``factor``.

    Examples
    --------
    >>> block_reduce(np.arange(10).reshape(2, 5), 2, np.maximum)
    array([[6, 8, 9]])
    """
    pads = [(0, (-n) % factor) for n in array.shape]
    a = np.pad(array, pads, mode="edge") if any(p for _, p in pads) else array
    out = np.array(a[::factor, ::factor], copy=True)
    for i in range(factor):
        for j in range(factor):
            if i or j:
                ufunc(out, a[i::factor, j::factor], out=out)
    return out


def upsample(array: np.ndarray, factor: int, shape: Sequence[int]) -> np.ndarray:
    """Repeat each element of a 2D array ``factor`` × ``factor`` times, cut to ``shape``."""
    out: np.ndarray = np.repeat(np.repeat(array, factor, 0), factor, 1)[: shape[0], : shape[1]]
    return out


def describe_window(window: Window | None) -> list[int] | None:
    """A window as ``[start0, start1, ..., stop0, stop1, ...]`` for ``info``."""
    if window is None:
        return None
    return [int(s.start) for s in window] + [int(s.stop) for s in window]


def summary(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with numpy scalars as Python numbers (``info`` must be JSON)."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, np.generic):
            out[k] = v.item()
        elif isinstance(v, float) and not math.isfinite(v):
            out[k] = None
        else:
            out[k] = v
    return out
