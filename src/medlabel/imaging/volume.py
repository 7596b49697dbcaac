"""The :class:`Volume`: a pixel array that always travels with its geometry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


def _validate_inputs(array: np.ndarray, affine: np.ndarray) -> None:
    if array.ndim not in (3, 4):
        raise ValueError(
            f"Volume array must have shape (planes, rows, columns) or (planes, rows, columns, "
            f"channels); got {array.ndim} dimensions with shape {array.shape}"
        )
    if array.ndim == 4 and array.shape[3] not in (1, 3, 4):
        raise ValueError(f"Volume channels must be 1, 3 or 4; got shape {array.shape}")
    if min(array.shape[:3]) < 1:
        raise ValueError(f"Volume array is empty: shape {array.shape}")
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4; got shape {affine.shape}")
    if not np.all(np.isfinite(affine)):
        raise ValueError("affine contains NaN or infinite values")
    if not np.allclose(affine[3], [0, 0, 0, 1]):
        raise ValueError(f"affine's last row must be [0, 0, 0, 1]; got {affine[3].tolist()}")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError("affine is singular: voxel axes are degenerate")


@dataclass(frozen=True, eq=False)
class Volume:
    """A 2D image or 3D volume with its affine in patient coordinates (LPS, mm).

    Parameters
    ----------
    array
        Pixel data of shape ``(planes, rows, columns)`` or ``(planes, rows, columns,
        channels)``. A 2D image has one plane. Values are in modality units (Hounsfield
        units for CT after rescale); colour images have 3 channels (RGB).
    affine
        4x4 matrix mapping a voxel index ``(plane, row, column, 1)`` to a position
        ``(x, y, z, 1)`` in the DICOM patient coordinate system (LPS, millimetres).
        Voxel centres sit at integer indices.
    modality
        DICOM modality code (``CT``, ``MR``, ``US``, ``CR``, ``DX``, ``ES``, ``OP``,
        ``SM``, ``OT``...).
    geometry_known
        ``False`` for photographs and images without spatial calibration, whose affine
        is a nominal 1 mm grid.
    metadata
        Free-form, de-identified facts about the image (window, photometric
        interpretation...), JSON-serialisable.

    Examples
    --------
    >>> v = Volume.from_spacing(np.zeros((2, 3, 4), np.int16), spacing=(2.5, 0.5, 0.5))
    >>> v.spacing
    (2.5, 0.5, 0.5)
    >>> v.voxel_to_patient([[1, 2, 3]]).tolist()
    [[1.5, 1.0, 2.5]]
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str = "OT"
    geometry_known: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        _validate_inputs(np.asarray(self.array), affine)
        object.__setattr__(self, "affine", affine)

    # construction ------------------------------------------------------------------------
    @classmethod
    def from_spacing(
        cls,
        array: npt.ArrayLike,
        *,
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        origin: Sequence[float] = (0.0, 0.0, 0.0),
        direction: npt.ArrayLike | None = None,
        **kwargs: Any,
    ) -> Volume:
        """Build a volume from spacing ``(plane, row, column)`` mm, an origin and a 3x3
        ``direction`` whose columns are the unit vectors of the plane, row and column axes
        in LPS (default: plane → +z, row → +y, column → +x, i.e. an axial stack)."""
        arr = np.asarray(array)
        if direction is None:
            direction = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.float64)
        d = np.asarray(direction, dtype=np.float64)
        if d.shape != (3, 3):
            raise ValueError(f"direction must be 3x3; got shape {d.shape}")
        sp = np.asarray(spacing, dtype=np.float64)
        if sp.shape != (3,) or np.any(sp <= 0):
            raise ValueError(f"spacing must be three positive numbers; got {list(spacing)}")
        affine = np.eye(4)
        affine[:3, :3] = d * sp[np.newaxis, :]
        affine[:3, 3] = np.asarray(origin, dtype=np.float64)
        return cls(arr, affine, **kwargs)

    # geometry ----------------------------------------------------------------------------
    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """``(planes, rows, columns)``."""
        p, r, c = self.array.shape[:3]
        return int(p), int(r), int(c)

    @property
    def channels(self) -> int:
        """Number of channels: 1 for greyscale, 3 for RGB."""
        return int(self.array.shape[3]) if self.array.ndim == 4 else 1

    @property
    def is_2d(self) -> bool:
        """True for a single plane."""
        return self.spatial_shape[0] == 1

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along ``(plane, row, column)`` in mm."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(norms[0]), float(norms[1]), float(norms[2])

    @property
    def origin(self) -> tuple[float, float, float]:
        """Patient position (LPS, mm) of the centre of voxel (0, 0, 0)."""
        o = self.affine[:3, 3]
        return float(o[0]), float(o[1]), float(o[2])

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are unit vectors of the plane, row and column axes."""
        out: np.ndarray = self.affine[:3, :3] / np.asarray(self.spacing)[np.newaxis, :]
        return out

    def voxel_to_patient(self, points: npt.ArrayLike) -> np.ndarray:
        """Map voxel indices ``(N, 3)`` as (plane, row, column) to LPS mm ``(N, 3)``."""
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        if pts.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3); got {pts.shape}")
        out: np.ndarray = pts @ self.affine[:3, :3].T + self.affine[:3, 3]
        return out

    def patient_to_voxel(self, points: npt.ArrayLike) -> np.ndarray:
        """Map LPS mm positions ``(N, 3)`` to continuous voxel indices ``(N, 3)``."""
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        if pts.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3); got {pts.shape}")
        inv = np.linalg.inv(self.affine)
        out: np.ndarray = pts @ inv[:3, :3].T + inv[:3, 3]
        return out

    def same_grid(self, other: Volume, *, atol: float = 1e-3) -> bool:
        """True when ``other`` has the same spatial shape and affine (within ``atol`` mm)."""
        return self.spatial_shape == other.spatial_shape and bool(
            np.allclose(self.affine, other.affine, atol=atol)
        )

    def with_array(self, array: np.ndarray, **changes: Any) -> Volume:
        """A volume on the same grid with another array (e.g. a mask)."""
        arr = np.asarray(array)
        if arr.shape[:3] != self.spatial_shape:
            raise ValueError(
                f"array shape {arr.shape} does not match the volume's (planes, rows, columns) "
                f"{self.spatial_shape}"
            )
        fields: dict[str, Any] = {
            "modality": self.modality,
            "geometry_known": self.geometry_known,
            "metadata": dict(self.metadata),
        }
        fields.update(changes)
        return Volume(arr, self.affine.copy(), **fields)
