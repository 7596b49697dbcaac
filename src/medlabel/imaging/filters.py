"""View filters: smoothing, histogram equalisation, CLAHE and edge enhancement.

They change what is displayed, never what is stored. Volumes are filtered plane by
plane (the planes a reader scrolls through), colour images channel by channel, so the
result is the same whether one slice or the whole stack is shown.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage


class FilterKind(StrEnum):
    MEAN = "mean"
    MEDIAN = "median"
    GAUSSIAN = "gaussian"
    EQUALIZE = "equalize"
    CLAHE = "clahe"
    SHARPEN = "sharpen"
    EDGES = "edges"


class ViewFilter(BaseModel):
    """A filter and its parameters.

    ``size`` is the window of mean and median filters in pixels (odd); ``sigma`` the
    Gaussian's standard deviation in pixels (also used by sharpen); ``amount`` the
    strength of sharpening; ``clip_limit`` CLAHE's contrast limit (0..1).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FilterKind
    size: int = Field(default=3, ge=3, le=15)
    sigma: float = Field(default=1.0, gt=0, le=10)
    amount: float = Field(default=1.0, gt=0, le=5)
    clip_limit: float = Field(default=0.01, gt=0, le=1)

    def cache_key(self) -> str:
        return self.model_dump_json()


def _validate_inputs(array: np.ndarray) -> None:
    if array.ndim not in (3, 4):
        raise ValueError(f"expected (planes, rows, columns[, channels]); got shape {array.shape}")


def _per_plane(array: np.ndarray, fn: object) -> np.ndarray:
    assert callable(fn)
    out = np.empty(array.shape, dtype=np.float32)
    for p in range(array.shape[0]):
        if array.ndim == 4:
            for ch in range(array.shape[3]):
                out[p, ..., ch] = fn(array[p, ..., ch])
        else:
            out[p] = fn(array[p])
    return out


def _rescale01(img: np.ndarray) -> tuple[np.ndarray, float, float]:
    lo, hi = float(img.min()), float(img.max())
    span = hi - lo if hi > lo else 1.0
    return (img.astype(np.float32) - lo) / span, lo, span


def _equalize(img: np.ndarray) -> np.ndarray:
    flat = img.reshape(-1)
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    cdf = np.cumsum(counts).astype(np.float64)
    cdf = (cdf - cdf[0]) / max(cdf[-1] - cdf[0], 1.0)
    out: np.ndarray = cdf[inverse].reshape(img.shape).astype(np.float32)
    return out


def _clahe(img: np.ndarray, clip_limit: float) -> np.ndarray:
    from skimage.exposure import equalize_adapthist

    scaled, _, _ = _rescale01(img)
    return np.asarray(equalize_adapthist(scaled, clip_limit=clip_limit), dtype=np.float32)


def apply_view_filter(array: np.ndarray, spec: ViewFilter) -> np.ndarray:
    """Filter ``array`` of shape ``(planes, rows, columns[, channels])`` for display.

    Smoothing and sharpening keep the image's units (e.g. HU, so CT windows still
    apply); equalisation and CLAHE return values in 0..1000; edges the gradient
    magnitude in units per pixel. The result is float32 of the same shape.

    Examples
    --------
    >>> img = np.zeros((1, 5, 5)); img[0, 2, 2] = 9
    >>> apply_view_filter(img, ViewFilter(kind="mean")).max()
    np.float32(1.0)
    """
    _validate_inputs(array)
    kind = spec.kind
    if kind == FilterKind.MEAN:
        return _per_plane(array, lambda a: ndimage.uniform_filter(a.astype(np.float32), spec.size))
    if kind == FilterKind.MEDIAN:
        return _per_plane(array, lambda a: ndimage.median_filter(a, size=spec.size))
    if kind == FilterKind.GAUSSIAN:
        return _per_plane(
            array, lambda a: ndimage.gaussian_filter(a.astype(np.float32), spec.sigma)
        )
    if kind == FilterKind.SHARPEN:

        def unsharp(a: np.ndarray) -> np.ndarray:
            f = a.astype(np.float32)
            out: np.ndarray = f + spec.amount * (f - ndimage.gaussian_filter(f, spec.sigma))
            return out

        return _per_plane(array, unsharp)
    if kind == FilterKind.EDGES:

        def sobel(a: np.ndarray) -> np.ndarray:
            f = a.astype(np.float32)
            out: np.ndarray = np.hypot(ndimage.sobel(f, axis=0), ndimage.sobel(f, axis=1)) / 8
            return out

        return _per_plane(array, sobel)
    if kind == FilterKind.EQUALIZE:
        return _per_plane(array, lambda a: 1000.0 * _equalize(a))
    return _per_plane(array, lambda a: 1000.0 * _clahe(a, spec.clip_limit))
