"""Window/level: mapping modality values to display grey levels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """A display window: ``center`` and ``width`` in modality units (HU for CT)."""

    center: float
    width: float

    def __post_init__(self) -> None:
        if not np.isfinite(self.center) or not np.isfinite(self.width):
            raise ValueError(f"window center and width must be finite; got {self}")
        if self.width < 1:
            raise ValueError(f"window width must be at least 1; got {self.width}")


#: CT presets (center, width in HU), as commonly used in radiology reading rooms.
CT_PRESETS: dict[str, Window] = {
    "brain": Window(40, 80),
    "subdural": Window(75, 215),
    "stroke": Window(40, 40),
    "lung": Window(-600, 1500),
    "mediastinum": Window(50, 350),
    "soft_tissue": Window(50, 400),
    "abdomen": Window(40, 350),
    "liver": Window(30, 150),
    "bone": Window(400, 1800),
}


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Map values to uint8 grey levels with the DICOM linear VOI function (PS3.3 C.11.2.1.2).

    Examples
    --------
    >>> apply_window(np.array([-1000, 40, 1000]), Window(40, 80)).tolist()
    [0, 129, 255]
    """
    c, w = float(window.center), float(window.width)
    lo = c - 0.5 - (w - 1) / 2
    scale = 255.0 / (w - 1) if w > 1 else 255.0
    out = (np.asarray(values, dtype=np.float32) - np.float32(lo)) * np.float32(scale)
    np.clip(out, 0, 255, out=out)
    result: np.ndarray = np.rint(out).astype(np.uint8)
    return result


def auto_window(array: np.ndarray, *, low: float = 0.5, high: float = 99.5) -> Window:
    """A window spanning the ``low``..``high`` percentiles of the values (for MR, US...).

    Large arrays are subsampled (deterministically) so this stays fast.

    Examples
    --------
    >>> auto_window(np.arange(1001), low=0, high=100)
    Window(center=500.0, width=1000.0)
    """
    flat = np.asarray(array).reshape(-1)
    if flat.size == 0:
        raise ValueError("cannot compute a window for an empty array")
    step = max(1, flat.size // 2_000_000)
    sample = flat[::step].astype(np.float64)
    lo, hi = np.percentile(sample, [low, high])
    if hi - lo < 1:
        lo, hi = float(sample.min()), float(sample.max())
    width = max(float(hi - lo), 1.0)
    return Window(center=float(lo + width / 2), width=width)


def to_display(image: np.ndarray, window: Window | None) -> np.ndarray:
    """uint8 display image: windowed greyscale, or colour scaled to 8 bits per channel."""
    if window is not None:
        return apply_window(image, window)
    if image.dtype == np.uint8:
        return image
    lo, hi = float(image.min()), float(image.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out: np.ndarray = np.rint((image.astype(np.float32) - lo) * scale).astype(np.uint8)
    return out
