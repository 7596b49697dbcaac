"""Display images of a volume: oriented, windowed slices and thumbnails (uint8 arrays)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medlabel.imaging.orientation import (
    View,
    display_axes,
    display_slice,
    native_view,
    view_axis,
)
from medlabel.imaging.windowing import Window, to_display


def render_slice(
    array: np.ndarray,
    affine: np.ndarray,
    *,
    view: View | str | None,
    index: int | None,
    window: Window | None,
) -> tuple[np.ndarray, dict[str, str]]:
    """A uint8 display slice and its edge orientation labels.

    ``view`` None is the native view (the array's planes); ``index`` None the middle
    slice; ``window`` None shows colour images as stored and greyscale images at full
    range. Colour images ignore the window.
    """
    v = View(view) if view is not None else native_view(affine)
    if index is None:
        index = array.shape[view_axis(affine, v)] // 2
    img, labels = display_slice(array, affine, v, index)
    return to_display(np.asarray(img), None if img.ndim == 3 else window), labels


def thumbnail(
    array: np.ndarray, affine: np.ndarray, window: Window | None, *, size: int = 128
) -> np.ndarray:
    """A uint8 thumbnail (longest side ``size`` pixels) of the middle native slice, with
    the physical aspect ratio whatever the pixel spacing."""
    v = native_view(affine)
    img, _ = render_slice(array, affine, view=v, index=None, window=window)
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    row_axis, col_axis = display_axes(affine, v)
    h_mm = img.shape[0] * float(spacing[row_axis])
    w_mm = img.shape[1] * float(spacing[col_axis])
    scale = size / max(h_mm, w_mm)
    zoom: tuple[float, ...] = (h_mm * scale / img.shape[0], w_mm * scale / img.shape[1])
    if img.ndim == 3:
        zoom = (*zoom, 1.0)
    out = ndimage.zoom(img.astype(np.float32), zoom, order=1, prefilter=False)
    result: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return result
