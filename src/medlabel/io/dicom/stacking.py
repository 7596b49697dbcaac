"""Plan images from frame geometry: group, sort along the normal, check, split.

Pure geometry over :class:`~medlabel.io.dicom.frames.FramePlane` records; nothing here
decodes pixels. Each plan carries its planes in order and its affine, so the pixel work
later is a copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from medlabel.io.dicom.frames import SPLIT_ATTRIBUTES, FramePlane
from medlabel.io.dicom.results import Rejection

#: Gaps between slice positions may differ from the median gap by this much (mm)...
GAP_ABS_TOLERANCE_MM = 0.02
#: ...or by this fraction of the median gap, whichever is larger.
GAP_REL_TOLERANCE = 0.05
#: Positions closer than this along the normal are the same slice position (mm).
DUPLICATE_TOLERANCE_MM = 0.01
#: Direction cosines and pixel spacings that differ by less than this are equal.
ORIENTATION_TOLERANCE = 1e-3
SPACING_TOLERANCE_MM = 1e-4


@dataclass
class ImagePlan:
    """An image to assemble: its planes in order and its affine."""

    planes: list[FramePlane]
    affine: np.ndarray
    geometry_known: bool
    names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def voxels(self) -> int:
        """Number of voxels (planes x rows x columns)."""
        first = self.planes[0]
        return len(self.planes) * first.rows * first.columns


def plan_spatial(planes: Sequence[FramePlane]) -> list[ImagePlan | Rejection]:
    """Plan stacks from frames that have a position and an orientation.

    Frames are grouped by size, orientation and pixel spacing (several groups are named
    ``orientation k`` or ``stack k``); each group is sorted along the slice normal and
    checked, splitting frames that share a position by echo, time, ... when possible.
    """
    groups = _group_by_geometry(sorted(planes, key=lambda p: p.order_key))
    label = "stack"
    if len(groups) > 1:
        orientations = np.array([g[0].orientation for g in groups], dtype=np.float64)
        pairwise = np.abs(orientations[:, np.newaxis] - orientations[np.newaxis]).max(axis=2)
        np.fill_diagonal(pairwise, np.inf)
        if pairwise.min() > ORIENTATION_TOLERANCE:
            label = "orientation"
    results: list[ImagePlan | Rejection] = []
    for number, group in enumerate(groups, start=1):
        names = [f"{label} {number}"] if len(groups) > 1 else []
        results.extend(_plan_group(group, names))
    return results


def plan_flat(planes: Sequence[FramePlane]) -> ImagePlan:
    """Plan one image from the frames of one instance without usable positions.

    In-plane spacing comes from Pixel Spacing or Imager Pixel Spacing (else a nominal
    1 mm), the plane step from Spacing Between Slices or Slice Thickness (else 1 mm).
    The geometry is known only for a single frame with a real spacing and orientation.
    """
    ordered = sorted(planes, key=lambda p: p.frame)
    first = ordered[0]
    warnings = []
    row_dir, col_dir = _directions(first)
    normal = np.cross(row_dir, col_dir)
    spacing = first.spacing or (1.0, 1.0)
    if first.spacing is None:
        warnings.append("no pixel spacing: the image is shown on a nominal 1 mm grid")
    elif first.spacing_source != "PixelSpacing":
        warnings.append(
            f"pixel spacing from {first.spacing_source} (at the detector, not corrected "
            "for magnification)"
        )
    origin = np.asarray(first.position if first.position is not None else (0.0, 0.0, 0.0))
    affine = _affine(origin, normal * (first.slice_step or 1.0), row_dir, col_dir, spacing)
    known = (
        len(ordered) == 1
        and first.spacing is not None
        and first.orientation_source == "ImageOrientationPatient"
    )
    return ImagePlan(list(ordered), affine, known, warnings=warnings)


def _plan_group(planes: list[FramePlane], names: list[str]) -> list[ImagePlan | Rejection]:
    first = planes[0]
    row_dir, col_dir = _directions(first)
    normal = np.cross(row_dir, col_dir)
    positions = np.array([p.position for p in planes], dtype=np.float64)
    along = positions @ normal
    order = sorted(range(len(planes)), key=lambda i: (along[i], planes[i].order_key))
    planes = [planes[i] for i in order]
    positions, along = positions[order], along[order]
    if np.any(np.diff(along) < DUPLICATE_TOLERANCE_MM):
        parts = _split_duplicates(planes, normal, [label for label, _, _ in SPLIT_ATTRIBUTES])
        if parts is None:
            return [Rejection(_keys(planes), _duplicate_reason(planes, along))]
        results: list[ImagePlan | Rejection] = []
        for part_names, part in parts:
            results.extend(_plan_group(part, names + part_names))
        return results
    warnings: list[str] = []
    if len(planes) == 1:
        step = normal * (first.slice_step or 1.0)
    else:
        gaps = np.diff(along)
        median = float(np.median(gaps))
        tolerance = max(GAP_ABS_TOLERANCE_MM, GAP_REL_TOLERANCE * median)
        worst = int(np.argmax(np.abs(gaps - median)))
        if abs(gaps[worst] - median) > tolerance:
            return [Rejection(_keys(planes), _gap_reason(planes, along, gaps, median, worst))]
        step = (positions[-1] - positions[0]) / (len(planes) - 1)
        predicted = positions[0] + np.arange(len(planes))[:, np.newaxis] * step
        deviation = np.linalg.norm(positions - predicted, axis=1)
        if deviation.max() > tolerance:
            k = int(np.argmax(deviation))
            return [
                Rejection(
                    _keys(planes),
                    f"slice positions do not lie on a straight line: {_describe(planes[k])} is "
                    f"{deviation[k]:.3g} mm off; the series mixes stacks or is corrupt",
                )
            ]
        shear = step - (step @ normal) * normal
        if np.linalg.norm(shear) * (len(planes) - 1) > tolerance:
            angle = np.degrees(np.arctan2(np.linalg.norm(shear), step @ normal))
            warnings.append(
                f"slices are sheared by {angle:.2f} degrees (gantry tilt): the plane axis is "
                "not perpendicular to the image planes"
            )
    spacing = first.spacing or (1.0, 1.0)
    if first.spacing is None:
        warnings.append("no pixel spacing: the in-plane grid is a nominal 1 mm")
    affine = _affine(positions[0], step, row_dir, col_dir, spacing)
    return [ImagePlan(planes, affine, first.spacing is not None, list(names), warnings)]


def _split_duplicates(
    planes: list[FramePlane], normal: np.ndarray, labels: list[str]
) -> list[tuple[list[str], list[FramePlane]]] | None:
    """Partition planes so no part has two planes at one position, or ``None``."""
    along = np.sort(np.array([p.position for p in planes]) @ normal)
    if not np.any(np.diff(along) < DUPLICATE_TOLERANCE_MM):
        return [([], planes)]
    for index, label in enumerate(labels):
        values = [p.split_value(label) for p in planes]
        distinct = sorted(set(values), key=_natural)
        if len(distinct) < 2:
            continue
        parts: list[tuple[list[str], list[FramePlane]]] = []
        for value in distinct:
            subset = [p for p, v in zip(planes, values, strict=True) if v == value]
            sub_parts = _split_duplicates(subset, normal, labels[index + 1 :])
            if sub_parts is None:
                break
            name = f"{label} {value}" if value else f"{label} (none)"
            parts.extend(([name, *names], part) for names, part in sub_parts)
        else:
            return parts
    return None


def _duplicate_reason(planes: list[FramePlane], along: np.ndarray) -> str:
    i = int(np.argmin(np.diff(along)))
    count = int(np.sum(np.diff(along) < DUPLICATE_TOLERANCE_MM))
    return (
        f"{count + 1} or more images share slice positions (e.g. {_describe(planes[i])} and "
        f"{_describe(planes[i + 1])} at {along[i]:.4g} mm) and cannot be told apart by "
        "stack, echo, temporal position, trigger time, b-value, acquisition number or image "
        "type; the series mixes volumes or contains copies"
    )


def _gap_reason(
    planes: list[FramePlane], along: np.ndarray, gaps: np.ndarray, median: float, worst: int
) -> str:
    return (
        f"slice spacing varies from {gaps.min():.3g} to {gaps.max():.3g} mm between "
        f"positions (typically {median:.3g} mm; {gaps[worst]:.3g} mm between "
        f"{_describe(planes[worst])} at {along[worst]:.4g} mm and "
        f"{_describe(planes[worst + 1])} at {along[worst + 1]:.4g} mm): slices are missing "
        "or the series mixes stacks; upload the complete series"
    )


def _describe(plane: FramePlane) -> str:
    text = plane.key
    if plane.instance_number is not None:
        text += f" (instance {plane.instance_number})"
    if plane.frame:
        text += f" frame {plane.frame + 1}"
    return text


def _keys(planes: Sequence[FramePlane]) -> list[str]:
    return list(dict.fromkeys(p.key for p in planes))


def _natural(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _directions(plane: FramePlane) -> tuple[np.ndarray, np.ndarray]:
    if plane.orientation is None:
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    values = np.asarray(plane.orientation, dtype=np.float64)
    return values[:3], values[3:]


def _affine(
    origin: np.ndarray,
    step: np.ndarray,
    row_dir: np.ndarray,
    col_dir: np.ndarray,
    spacing: tuple[float, float],
) -> np.ndarray:
    """Voxel (plane, row, column) → LPS: ``origin + k*step + r*dr*col_dir + c*dc*row_dir``."""
    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = col_dir * spacing[0]
    affine[:3, 2] = row_dir * spacing[1]
    affine[:3, 3] = origin
    return affine


_GEOMETRY_TOLERANCE = np.array([0.5] * 3 + [ORIENTATION_TOLERANCE] * 6 + [SPACING_TOLERANCE_MM] * 2)


def _group_by_geometry(planes: Sequence[FramePlane]) -> list[list[FramePlane]]:
    """Group planes of equal size, orientation and spacing (within tolerances).

    Each plane is compared with every group's first plane in one vectorised step, so
    the work stays linear in the number of planes for the usual handful of groups.
    """
    groups: list[list[FramePlane]] = []
    keys = np.empty((0, _GEOMETRY_TOLERANCE.size))
    for plane in planes:
        size = (plane.rows, plane.columns, plane.channels)
        orientation = plane.orientation or (0.0,) * 6
        spacing = plane.spacing or (-1.0, -1.0)
        key = np.array([*size, *orientation, *spacing], dtype=np.float64)
        matches = np.flatnonzero(np.all(np.abs(keys - key) <= _GEOMETRY_TOLERANCE, axis=1))
        if matches.size:
            groups[int(matches[0])].append(plane)
        else:
            groups.append([plane])
            keys = np.vstack([keys, key])
    return groups
