"""What one annotation revision holds, besides its label mask.

Coordinates are voxel indices ``(plane, row, column)`` with voxel centres at integers
(the convention of the affine), and positions in patient coordinates (LPS, mm). A client
gives either; :func:`normalize_content` fills in the other from the image's affine and
checks labels and bounds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from medlabel.annotation.enums import LabelKind
from medlabel.core.errors import InvalidInputError

Triple = tuple[float, float, float]


class Box(BaseModel):
    """An axis-aligned box in voxel space; a 2D box spans one plane (``end - start = 1``)."""

    model_config = ConfigDict(extra="forbid")

    label: str
    start: Triple | None = Field(default=None, description="Min corner, voxel (plane,row,col).")
    end: Triple | None = Field(default=None, description="Max corner, voxel (plane,row,col).")
    start_mm: Triple | None = Field(default=None, description="Corner at start, LPS mm.")
    end_mm: Triple | None = Field(default=None, description="Corner at end, LPS mm.")

    @model_validator(mode="after")
    def _one_system(self) -> Box:
        if (self.start is None) != (self.end is None) or (
            (self.start_mm is None) != (self.end_mm is None)
        ):
            raise ValueError("give both corners of a box: start and end (or start_mm and end_mm)")
        if self.start is None and self.start_mm is None:
            raise ValueError("a box needs voxel corners (start, end) or mm corners")
        return self


class Point(BaseModel):
    """A landmark, in voxel and/or patient coordinates."""

    model_config = ConfigDict(extra="forbid")

    label: str
    position: Triple | None = Field(default=None, description="Voxel (plane, row, column).")
    position_mm: Triple | None = Field(default=None, description="LPS mm.")

    @model_validator(mode="after")
    def _one_system(self) -> Point:
        if self.position is None and self.position_mm is None:
            raise ValueError("a point needs a voxel position or a position_mm")
        return self


class Note(BaseModel):
    """Free text about the whole image, or about a region when ``position`` is given."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=20_000)
    label: str | None = None
    position: Triple | None = None
    position_mm: Triple | None = None


class Location(BaseModel):
    """A position on an image (e.g. where a review comment points), in voxel and/or
    patient coordinates; :func:`normalize_location` fills in the other."""

    model_config = ConfigDict(extra="forbid")

    position: Triple | None = Field(default=None, description="Voxel (plane, row, column).")
    position_mm: Triple | None = Field(default=None, description="LPS mm.")

    @model_validator(mode="after")
    def _one_system(self) -> Location:
        if self.position is None and self.position_mm is None:
            raise ValueError("a location needs a voxel position or a position_mm")
        return self


class AnnotationContent(BaseModel):
    """Boxes, points, image-level classes and notes of one revision."""

    model_config = ConfigDict(extra="forbid")

    boxes: list[Box] = Field(default_factory=list, max_length=100_000)
    points: list[Point] = Field(default_factory=list, max_length=100_000)
    classes: list[str] = Field(default_factory=list, max_length=1000)
    notes: list[Note] = Field(default_factory=list, max_length=10_000)

    def is_empty(self) -> bool:
        return not (self.boxes or self.points or self.classes or self.notes)


def _check_label(name: str, kind: LabelKind, labels: Mapping[str, LabelKind]) -> None:
    if name not in labels:
        known = ", ".join(sorted(labels)) or "none defined yet"
        raise InvalidInputError(f"unknown label {name!r}; this project's labels: {known}")
    if labels[name] != kind:
        raise InvalidInputError(
            f"label {name!r} is a {labels[name].value} label and cannot be used as a {kind.value}"
        )


def _to_mm(affine: np.ndarray, p: Sequence[float]) -> Triple:
    v = affine[:3, :3] @ np.asarray(p, dtype=np.float64) + affine[:3, 3]
    return (round(float(v[0]), 4), round(float(v[1]), 4), round(float(v[2]), 4))


def _to_voxel(inverse: np.ndarray, p: Sequence[float]) -> Triple:
    v = inverse[:3, :3] @ np.asarray(p, dtype=np.float64) + inverse[:3, 3]
    return (round(float(v[0]), 4), round(float(v[1]), 4), round(float(v[2]), 4))


def _check_inside(what: str, p: Triple, shape: Sequence[int]) -> None:
    for value, n, axis in zip(p, shape, ("plane", "row", "column"), strict=True):
        if not -0.5 - 1e-3 <= value <= n - 0.5 + 1e-3:
            raise InvalidInputError(
                f"{what} lies outside the image: {axis} {value:g} is not within "
                f"-0.5..{n - 0.5:g} (image shape {tuple(shape)})"
            )


def normalize_content(
    content: AnnotationContent,
    *,
    labels: Mapping[str, LabelKind],
    shape: Sequence[int],
    affine: np.ndarray,
) -> AnnotationContent:
    """Check labels and bounds and fill both coordinate systems.

    Parameters
    ----------
    content
        As sent by a client.
    labels
        The project's label names and kinds.
    shape
        ``(planes, rows, columns)`` of the image.
    affine
        The image's voxel-to-LPS affine.

    Raises
    ------
    InvalidInputError
        On an unknown label, a label of the wrong kind, a coordinate outside the image,
        or a box whose start is not below its end.
    """
    inverse = np.linalg.inv(affine)
    boxes = []
    for i, box in enumerate(content.boxes):
        _check_label(box.label, LabelKind.BOX, labels)
        if box.start is not None and box.end is not None:
            start, end = box.start, box.end
        else:
            assert box.start_mm is not None and box.end_mm is not None
            a, b = _to_voxel(inverse, box.start_mm), _to_voxel(inverse, box.end_mm)
            start = (min(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]))
            end = (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]))
        if any(e <= s for s, e in zip(start, end, strict=True)):
            raise InvalidInputError(
                f"box {i} ({box.label!r}): start {start} must be below end {end}"
            )
        _check_inside(f"box {i} ({box.label!r})", start, shape)
        _check_inside(f"box {i} ({box.label!r})", end, shape)
        boxes.append(
            Box(
                label=box.label,
                start=start,
                end=end,
                start_mm=_to_mm(affine, start),
                end_mm=_to_mm(affine, end),
            )
        )
    points = []
    for i, pt in enumerate(content.points):
        _check_label(pt.label, LabelKind.POINT, labels)
        at = pt.position if pt.position is not None else _to_voxel(inverse, pt.position_mm or ())
        _check_inside(f"point {i} ({pt.label!r})", at, shape)
        points.append(Point(label=pt.label, position=at, position_mm=_to_mm(affine, at)))
    seen: set[str] = set()
    for name in content.classes:
        _check_label(name, LabelKind.CLASSIFICATION, labels)
        if name in seen:
            raise InvalidInputError(f"class {name!r} is listed twice")
        seen.add(name)
    notes = []
    for i, note in enumerate(content.notes):
        if note.label is not None:
            _check_label(note.label, LabelKind.NOTE, labels)
        pos: Triple | None = note.position
        if pos is None and note.position_mm is not None:
            pos = _to_voxel(inverse, note.position_mm)
        if pos is not None:
            _check_inside(f"note {i}", pos, shape)
        notes.append(
            Note(
                text=note.text,
                label=note.label,
                position=pos,
                position_mm=_to_mm(affine, pos) if pos is not None else None,
            )
        )
    return AnnotationContent(boxes=boxes, points=points, classes=list(content.classes), notes=notes)


def normalize_location(
    location: Location, *, shape: Sequence[int], affine: np.ndarray, what: str = "location"
) -> Location:
    """Check that a location lies inside the image and fill both coordinate systems (the
    voxel position wins when both are given, as for points).

    Raises
    ------
    InvalidInputError
        If the location lies outside the image's ``(planes, rows, columns)`` ``shape``.

    Examples
    --------
    >>> loc = normalize_location(Location(position=(0, 1, 2)), shape=(1, 4, 4), affine=np.eye(4))
    >>> loc.position_mm
    (0.0, 1.0, 2.0)
    """
    if location.position is not None:
        at = location.position
    else:
        at = _to_voxel(np.linalg.inv(affine), location.position_mm or ())
    _check_inside(what, at, shape)
    return Location(position=at, position_mm=_to_mm(affine, at))


def check_mask(mask: np.ndarray, *, shape: Sequence[int], values: Mapping[int, str]) -> None:
    """Check a label mask against its image and the project's mask labels.

    Raises
    ------
    InvalidInputError
        If the shape differs from ``shape`` or a value is not a mask label's value.
    """
    if tuple(mask.shape) != tuple(shape):
        raise InvalidInputError(
            f"mask shape {tuple(mask.shape)} does not match the image's (planes, rows, columns) "
            f"{tuple(shape)}"
        )
    if mask.dtype.kind not in "ui":
        raise InvalidInputError(f"mask must hold integer label values; got dtype {mask.dtype}")
    check_mask_values(np.unique(mask), values)


def check_mask_values(present: Iterable[int], values: Mapping[int, str]) -> None:
    """Raise :class:`InvalidInputError` naming the label values in ``present`` that are
    not mask labels (``values``); 0 (background) is always allowed."""
    unknown = [int(v) for v in present if v != 0 and int(v) not in values]
    if unknown:
        known = ", ".join(f"{n}={v}" for v, n in sorted(values.items())) or "none defined yet"
        raise InvalidInputError(
            f"mask contains value(s) {unknown} that are not mask labels of this project "
            f"(mask labels: {known})"
        )
