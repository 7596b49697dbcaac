"""Turning a slice into what LiteMedSAM was trained on, and prompts into its frame.

LiteMedSAM sees a 256×256 RGB image scaled to [0, 1]: the slice is mapped to 8-bit
grey levels per modality (a CT window in HU, the 0.5–99.5 percentiles for MR and other
greyscale images, photographs as they are), resized so its longest *physical* side is
256 pixels (anisotropic pixels become square) and padded at the bottom and right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medlabel.imaging.windowing import Window, apply_window, auto_window

#: side of the model's input image
MODEL_SIDE = 256

#: the CT window used when the caller gives none: soft tissue, where most annotated
#: structures (organs, lesions, vessels with contrast) have their contrast
DEFAULT_CT_WINDOW = Window(40, 400)


@dataclass(frozen=True)
class Frame:
    """How a slice of ``shape`` (rows, columns) sits in the model's 256×256 input."""

    shape: tuple[int, int]
    scale: tuple[float, float]  # model pixels per slice pixel, along rows and columns
    size: tuple[int, int]  # rows and columns of the resized image inside the padding

    @classmethod
    def for_slice(cls, shape: tuple[int, int], spacing: tuple[float, float]) -> Frame:
        """The frame for a slice of ``shape`` with pixel ``spacing`` (mm) along (row, col).

        Examples
        --------
        >>> Frame.for_slice((100, 200), (1.0, 1.0)).size
        (128, 256)
        >>> Frame.for_slice((100, 100), (2.0, 1.0)).size
        (256, 128)
        """
        rows, cols = shape
        if rows < 1 or cols < 1:
            raise ValueError(f"slice shape must be positive, got {shape}")
        sr, sc = (float(s) if s > 0 and np.isfinite(s) else 1.0 for s in spacing)
        extent = max(rows * sr, cols * sc)
        size_r = max(1, round(MODEL_SIDE * rows * sr / extent))
        size_c = max(1, round(MODEL_SIDE * cols * sc / extent))
        return cls(shape=(rows, cols), scale=(size_r / rows, size_c / cols), size=(size_r, size_c))

    def to_model(self, row: float, col: float) -> tuple[float, float]:
        """A slice pixel coordinate (centre at integers) as model ``(x, y)``."""
        return (col + 0.5) * self.scale[1] - 0.5, (row + 0.5) * self.scale[0] - 0.5

    def box_to_model(self, box: tuple[float, float, float, float]) -> np.ndarray:
        """A box ``(row0, col0, row1, col1)`` of pixel centres (inclusive) as model
        ``[x0, y0, x1, y1]`` enclosing those pixels whole, clipped into the image.

        Examples
        --------
        >>> Frame.for_slice((32, 32), (1.0, 1.0)).box_to_model((2, 4, 5, 9)).tolist()
        [32.0, 16.0, 79.0, 47.0]
        """
        r0, c0, r1, c1 = box
        sr, sc = self.scale
        x0, y0 = (c0 + 0.5) * sc - 0.5 * sc, (r0 + 0.5) * sr - 0.5 * sr
        x1, y1 = (c1 + 0.5) * sc + 0.5 * sc - 1, (r1 + 0.5) * sr + 0.5 * sr - 1
        hi_x, hi_y = self.size[1] - 1, self.size[0] - 1
        return np.array(
            [
                np.clip(x0, 0, hi_x),
                np.clip(y0, 0, hi_y),
                np.clip(x1, 0, hi_x),
                np.clip(y1, 0, hi_y),
            ],
            dtype=np.float32,
        )


def to_grey8(image: np.ndarray, modality: str, window: Window | None = None) -> np.ndarray:
    """8-bit image (rows, columns, 3) from a slice in modality units.

    ``window`` overrides the default (CT: soft tissue; other greyscale: percentiles).
    Colour images (rows, columns, 3) are scaled to 8 bits per channel.
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        rgb = img[..., :3]
        if rgb.dtype != np.uint8:
            lo, hi = float(rgb.min()), float(rgb.max())
            rgb = ((rgb.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6))).astype(np.uint8)
        return np.ascontiguousarray(rgb)
    if img.ndim != 2:
        raise ValueError(f"a slice must be (rows, columns) or (rows, columns, 3), got {img.shape}")
    if window is None:
        window = DEFAULT_CT_WINDOW if modality.upper() == "CT" else auto_window(img)
    grey = apply_window(img, window)
    return np.repeat(grey[..., None], 3, axis=2)


def model_input(grey8: np.ndarray, frame: Frame) -> np.ndarray:
    """The padded ``(3, 256, 256)`` float32 input in [0, 1] for an 8-bit RGB slice."""
    zoom = (frame.size[0] / grey8.shape[0], frame.size[1] / grey8.shape[1], 1)
    resized = ndimage.zoom(grey8.astype(np.float32), zoom, order=1, mode="nearest", grid_mode=True)
    resized = resized[: frame.size[0], : frame.size[1]]
    lo, hi = float(resized.min()), float(resized.max())
    resized = (resized - lo) / max(hi - lo, 1e-8)
    out = np.zeros((3, MODEL_SIDE, MODEL_SIDE), np.float32)
    out[:, : resized.shape[0], : resized.shape[1]] = resized.transpose(2, 0, 1)
    return out


def logits_to_slice(logits: np.ndarray, frame: Frame) -> np.ndarray:
    """Model logits (256, 256) back to the slice's grid (bilinear), as float32 logits."""
    crop = logits[: frame.size[0], : frame.size[1]].astype(np.float32)
    zoom = (frame.shape[0] / crop.shape[0], frame.shape[1] / crop.shape[1])
    out: np.ndarray = ndimage.zoom(crop, zoom, order=1, mode="nearest", grid_mode=True)
    return out[: frame.shape[0], : frame.shape[1]]
