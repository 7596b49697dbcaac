"""Slices of a volume as 2D images for per-slice engines, and coordinates on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medlabel.engines.base import EngineRequest, Point
from medlabel.imaging.volume import Volume


@dataclass(frozen=True)
class PlaneView:
    """One slice of a volume: a 2D image (rows, columns[, channels]) with its pixel
    spacing in mm, and the array axes its two dimensions come from."""

    image: np.ndarray
    spacing: tuple[float, float]
    axis: int
    index: int
    modality: str

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.image.shape[0]), int(self.image.shape[1]))

    @property
    def in_plane_axes(self) -> tuple[int, int]:
        """The array axes of the slice's first and second dimension."""
        a, b = (ax for ax in range(3) if ax != self.axis)
        return a, b

    def to_plane(self, point: Point) -> tuple[float, float]:
        """A voxel coordinate ``(p, r, c)`` as ``(row, column)`` on this slice."""
        a, b = self.in_plane_axes
        return float(point[a]), float(point[b])

    def mask(self, volume_mask: np.ndarray | None) -> np.ndarray | None:
        """This slice of a boolean mask of the volume's spatial shape."""
        if volume_mask is None:
            return None
        out: np.ndarray = np.take(np.asarray(volume_mask, bool), self.index, axis=self.axis)
        return out

    def box(self, request: EngineRequest) -> tuple[float, float, float, float] | None:
        """The request's box on this slice as ``(row0, col0, row1, col1)``, sorted."""
        if request.box is None:
            return None
        (r0, c0), (r1, c1) = (self.to_plane(p) for p in request.box)
        return min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1)


def plane_of(volume: Volume, axis: int, index: int) -> PlaneView:
    """Slice ``index`` along array ``axis``; raises ``ValueError`` if out of range."""
    n = volume.spatial_shape[axis]
    if not 0 <= index < n:
        raise ValueError(f"slice {index} is outside 0..{n - 1} along axis {axis}")
    image = np.take(volume.array, index, axis=axis)
    sp = volume.spacing
    a, b = (ax for ax in range(3) if ax != axis)
    return PlaneView(
        image=image,
        spacing=(float(sp[a]), float(sp[b])),
        axis=axis,
        index=int(index),
        modality=volume.modality,
    )


def request_plane(volume: Volume, request: EngineRequest) -> PlaneView:
    """The slice a per-slice request names (2D images: the only plane)."""
    if request.index is None:
        if volume.is_2d:
            return plane_of(volume, 0, 0)
        raise ValueError("this tool works on one slice: give the slice axis and index")
    return plane_of(volume, request.axis, request.index)
