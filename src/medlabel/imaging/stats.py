"""Statistics of labelled regions: size in mm² or mm³ and intensity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RegionStats:
    """One label's region. ``area_mm2`` is set for single-plane images, ``volume_mm3``
    for volumes; intensities are in the image's units (HU for CT). Empty regions have
    zero voxels and None intensities."""

    value: int
    voxels: int
    area_mm2: float | None
    volume_mm3: float | None
    mean: float | None
    std: float | None
    min: float | None
    max: float | None


def _validate_inputs(image: np.ndarray, mask: np.ndarray) -> None:
    if mask.shape != image.shape[:3]:
        raise ValueError(
            f"mask shape {mask.shape} does not match image (planes, rows, columns) "
            f"{image.shape[:3]}"
        )


def region_stats(
    image: np.ndarray,
    mask: np.ndarray,
    spacing: Sequence[float],
    values: Sequence[int] | None = None,
) -> list[RegionStats]:
    """Statistics of each label value in ``mask`` over ``image``.

    Parameters
    ----------
    image
        ``(planes, rows, columns)`` or with colour channels (intensity = channel mean).
    mask
        Integer label map ``(planes, rows, columns)``.
    spacing
        Voxel size ``(plane, row, column)`` in mm.
    values
        Labels to report (default: every non-zero value present).

    Examples
    --------
    >>> img = np.arange(8, dtype=float).reshape(1, 2, 4)
    >>> m = np.array([[[1, 1, 0, 0], [0, 0, 0, 2]]])
    >>> s = region_stats(img, m, (1.0, 0.5, 0.5))
    >>> [(r.value, r.voxels, r.area_mm2, r.mean) for r in s]
    [(1, 2, 0.5, 0.5), (2, 1, 0.25, 7.0)]
    """
    _validate_inputs(image, mask)
    intensity = image.mean(axis=3) if image.ndim == 4 else image
    if values is None:
        values = [int(v) for v in np.unique(mask) if v != 0]
    planar = mask.shape[0] == 1
    pixel_mm2 = float(spacing[1]) * float(spacing[2])
    voxel_mm3 = pixel_mm2 * float(spacing[0])
    out = []
    for v in values:
        sel = intensity[mask == v]
        n = int(sel.size)
        out.append(
            RegionStats(
                value=int(v),
                voxels=n,
                area_mm2=round(n * pixel_mm2, 4) if planar else None,
                volume_mm3=None if planar else round(n * voxel_mm3, 4),
                mean=float(sel.mean()) if n else None,
                std=float(sel.std()) if n else None,
                min=float(sel.min()) if n else None,
                max=float(sel.max()) if n else None,
            )
        )
    return out
