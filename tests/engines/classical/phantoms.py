"""Synthetic images with known truth for the classical engines, and real test images.

Phantoms are noisy discs, ellipses and balls in CT-like units; the real images come from
pydicom's test files (``CT_small.dcm``, 128×128 CT in HU).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydicom

from medlabel.engines.base import EngineRequest, Point
from medlabel.imaging.volume import Volume
from tests.conftest import sample_file


def ellipse(shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float]):
    """Boolean ellipse ``(rows, columns)``."""
    r, c = np.ogrid[: shape[0], : shape[1]]
    return ((r - centre[0]) / radii[0]) ** 2 + ((c - centre[1]) / radii[1]) ** 2 <= 1.0


def ball(shape: tuple[int, int, int], centre: tuple[float, ...], radius: float) -> np.ndarray:
    """Boolean ball ``(planes, rows, columns)``."""
    p, r, c = np.ogrid[: shape[0], : shape[1], : shape[2]]
    d2 = (p - centre[0]) ** 2 + (r - centre[1]) ** 2 + (c - centre[2]) ** 2
    return d2 <= radius**2


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 for two empty masks)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def disc_phantom(
    shape: tuple[int, int] = (128, 128),
    *,
    centre: tuple[float, float] = (64.0, 60.0),
    radii: tuple[float, float] = (30.0, 24.0),
    inside: float = 60.0,
    outside: float = -100.0,
    noise: float = 12.0,
    seed: int = 0,
    dtype: type = np.int16,
) -> tuple[np.ndarray, np.ndarray]:
    """A noisy ellipse ``(rows, columns)``: image of ``dtype`` and its truth mask."""
    truth = ellipse(shape, centre, radii)
    rng = np.random.default_rng(seed)
    img = np.where(truth, inside, outside) + rng.normal(0.0, noise, shape)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        img = np.clip(np.rint(img), info.min, info.max)
    return img.astype(dtype), truth


def two_structures(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """128×128 int16: a disc (60) and a brighter disc (200) overlapping it by 4 pixels, on a
    -100 background, noise 10; returns the image and both truths."""
    shape = (128, 128)
    first = ellipse(shape, (64, 44), (26, 26))
    second = ellipse(shape, (64, 88), (22, 22)) & ~first
    rng = np.random.default_rng(seed)
    img = np.full(shape, -100.0)
    img[first] = 60.0
    img[second] = 200.0
    img += rng.normal(0.0, 10.0, shape)
    return np.rint(img).astype(np.int16), first, second


def as_volume(image2d: np.ndarray, modality: str = "CT") -> Volume:
    """A one-plane volume (colour images keep their channel axis)."""
    return Volume.from_spacing(image2d[np.newaxis], spacing=(1.0, 0.7, 0.7), modality=modality)


def on_plane(row: float, column: float) -> Point:
    """A click on the only plane of a 2D image."""
    return (0.0, float(row), float(column))


def request(**kwargs: Any) -> EngineRequest:
    """A request on the only plane (axis 0, index 0)."""
    return EngineRequest(axis=0, index=0, **kwargs)


def ct_small() -> Volume:
    """pydicom's ``CT_small.dcm``: 128×128 CT in HU (a real image)."""
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    spacing = [float(v) for v in ds.PixelSpacing]
    return Volume.from_spacing(
        hu.astype(np.int16)[np.newaxis],
        spacing=(float(ds.SliceThickness), spacing[0], spacing[1]),
        modality="CT",
    )
