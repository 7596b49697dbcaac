"""Per-frame geometry of DICOM instances, classic and enhanced multi-frame alike.

Each frame of each instance becomes a :class:`FramePlane`: its size, orientation,
position, pixel spacing and the attributes that can tell apart frames sharing a
position (echo, temporal position...). Stacking works on these records only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

# (name used in part labels, classic keyword, enhanced (sequence, keyword)), in the order
# tried when instances share a position.
SPLIT_ATTRIBUTES: tuple[tuple[str, str, tuple[str, str]], ...] = (
    ("stack", "", ("FrameContentSequence", "StackID")),
    ("echo", "EchoNumbers", ("MREchoSequence", "EffectiveEchoTime")),
    ("time", "TemporalPositionIdentifier", ("FrameContentSequence", "TemporalPositionIndex")),
    (
        "trigger",
        "TriggerTime",
        ("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"),
    ),
    ("b-value", "DiffusionBValue", ("MRDiffusionSequence", "DiffusionBValue")),
    ("acquisition", "AcquisitionNumber", ("FrameContentSequence", "FrameAcquisitionNumber")),
    ("type", "ImageType", ("", "FrameType")),
)


@dataclass(frozen=True)
class FramePlane:
    """One frame of one instance with the geometry stacking needs.

    ``orientation`` is Image Orientation (Patient): the row direction (towards
    increasing column index) then the column direction, LPS unit vectors.
    ``orientation_source`` is ``"ImageOrientationPatient"``, ``"PatientOrientation"``
    (letters such as ``L\\F`` of projection images: a display hint, not a measured
    geometry) or ``""``. ``spacing`` is ``(between rows, between columns)`` in mm from
    ``spacing_source`` (Pixel Spacing, or Imager Pixel Spacing of projection images).
    """

    key: str
    frame: int
    rows: int
    columns: int
    channels: int
    orientation: tuple[float, ...] | None
    orientation_source: str
    position: tuple[float, float, float] | None
    spacing: tuple[float, float] | None
    spacing_source: str
    slice_step: float | None
    instance_number: int | None
    source: Dataset = field(compare=False, repr=False)

    def split_value(self, label: str) -> str:
        """The value of a :data:`SPLIT_ATTRIBUTES` label (``"echo"``...) for this frame.

        Read on demand (only series with shared positions need it); ``""`` if absent.
        """
        for name, keyword, (sequence, frame_keyword) in SPLIT_ATTRIBUTES:
            if name != label:
                continue
            ds = self.source
            if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
                return _text(_get(ds, self.frame, sequence, frame_keyword))
            return _text(ds.get(keyword)) if keyword else ""
        raise ValueError(f"unknown split attribute {label!r}")

    @property
    def spatial(self) -> bool:
        """True when the frame has both a position and a measured orientation."""
        return (
            self.position is not None
            and self.orientation is not None
            and self.orientation_source == "ImageOrientationPatient"
        )

    @property
    def order_key(self) -> tuple[float, str, int]:
        """Tie-breaker for sorting: instance number, then key, then frame."""
        number = self.instance_number if self.instance_number is not None else math.inf
        return (float(number), self.key, self.frame)


def frame_item(ds: Dataset, index: int, sequence: str) -> Dataset | None:
    """The first item of functional group ``sequence`` for frame ``index``.

    Looks in the Per-frame Functional Groups Sequence, then the Shared one; ``None``
    when neither has it (classic images).
    """
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and index < len(per_frame):
        item = _first(per_frame[index], sequence)
        if item is not None:
            return item
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        return _first(shared[0], sequence)
    return None


def frame_planes(key: str, ds: Dataset, frames: int) -> list[FramePlane]:
    """Describe every frame of ``ds`` (``frames`` of them) as a :class:`FramePlane`.

    Raises
    ------
    ValueError
        A geometry attribute does not parse (the caller names the file).
    """
    rows, columns = int(ds.Rows), int(ds.Columns)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    channels = (
        3 if int(ds.get("SamplesPerPixel") or 1) == 3 or photometric == "PALETTE COLOR" else 1
    )
    number = ds.get("InstanceNumber")
    instance_number = int(number) if number not in (None, "") else None
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    top_spacing, top_source = _top_spacing(ds)
    top_step = _positive(ds.get("SpacingBetweenSlices")) or _positive(ds.get("SliceThickness"))
    top_orientation = _unit_orientation(_floats(ds.get("ImageOrientationPatient"), 6))
    top_orientation_source = "ImageOrientationPatient" if top_orientation else ""
    if top_orientation is None:
        top_orientation = _from_patient_orientation(ds.get("PatientOrientation"))
        top_orientation_source = "PatientOrientation" if top_orientation else ""
    top_position = _floats(ds.get("ImagePositionPatient"), 3)
    planes = []
    for index in range(frames):
        orientation, orientation_source = top_orientation, top_orientation_source
        position = top_position if frames == 1 else None
        spacing, source, step = top_spacing, top_source, top_step
        if enhanced:
            frame_orientation = _unit_orientation(
                _floats(_get(ds, index, "PlaneOrientationSequence", "ImageOrientationPatient"), 6)
            )
            if frame_orientation is not None:
                orientation, orientation_source = frame_orientation, "ImageOrientationPatient"
            position = _floats(_get(ds, index, "PlanePositionSequence", "ImagePositionPatient"), 3)
            measures = frame_item(ds, index, "PixelMeasuresSequence")
            if measures is not None and _spacing(measures.get("PixelSpacing")):
                spacing, source = _spacing(measures.get("PixelSpacing")), "PixelSpacing"
            if measures is not None:
                step = (
                    _positive(measures.get("SpacingBetweenSlices"))
                    or _positive(measures.get("SliceThickness"))
                    or step
                )
        planes.append(
            FramePlane(
                key=key,
                frame=index,
                rows=rows,
                columns=columns,
                channels=channels,
                orientation=orientation,
                orientation_source=orientation_source,
                position=tuple(position) if position else None,  # type: ignore[arg-type]
                spacing=spacing,
                spacing_source=source,
                slice_step=step,
                instance_number=instance_number,
                source=ds,
            )
        )
    return planes


def _first(item: Dataset, sequence: str) -> Dataset | None:
    if sequence:
        seq = item.get(sequence)
        return seq[0] if seq else None
    for element in item:  # any "...FrameTypeSequence" (MR, CT, PET, US...)
        if element.keyword.endswith("FrameTypeSequence") and element.value:
            return element.value[0]  # type: ignore[no-any-return]
    return None


def _get(ds: Dataset, index: int, sequence: str, keyword: str) -> object:
    item = frame_item(ds, index, sequence)
    return None if item is None else item.get(keyword)


def _top_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str]:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        spacing = _spacing(ds.get(keyword))
        if spacing:
            return spacing, keyword
    return None, ""


def _spacing(value: object) -> tuple[float, float] | None:
    numbers = _floats(value, 2)
    if numbers is None or min(numbers) <= 0:
        return None
    return numbers[0], numbers[1]


def _floats(value: object, count: int) -> tuple[float, ...] | None:
    if value in (None, ""):
        return None
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if len(items) != count:
        return None
    numbers = tuple(float(v) for v in items)  # type: ignore[arg-type]
    return numbers if all(math.isfinite(n) for n in numbers) else None


def _positive(value: object) -> float | None:
    if value in (None, ""):
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) and number > 0 else None


def _unit_orientation(values: tuple[float, ...] | None) -> tuple[float, ...] | None:
    """Normalise both direction cosines; ``None`` if degenerate or not orthogonal."""
    if values is None:
        return None
    row, col = values[:3], values[3:]
    nr = math.sqrt(sum(v * v for v in row))
    nc = math.sqrt(sum(v * v for v in col))
    if nr < 0.5 or nc < 0.5:
        return None
    row = tuple(v / nr for v in row)
    col = tuple(v / nc for v in col)
    if abs(sum(a * b for a, b in zip(row, col, strict=True))) > 1e-2:
        return None
    return row + col


_LETTERS = {
    "L": (1, 0, 0),
    "R": (-1, 0, 0),
    "P": (0, 1, 0),
    "A": (0, -1, 0),
    "H": (0, 0, 1),
    "F": (0, 0, -1),
}


def _from_patient_orientation(value: object) -> tuple[float, ...] | None:
    """Direction cosines from Patient Orientation letters (e.g. ``["L", "F"]``)."""
    if value is None or isinstance(value, str) or not isinstance(value, Sequence):
        return None
    if len(value) != 2:
        return None
    vectors = []
    for text in value:
        letters = str(text).strip().upper()
        if not letters or any(c not in _LETTERS for c in letters):
            return None
        vectors.append(tuple(float(sum(_LETTERS[c][i] for c in letters)) for i in range(3)))
    return _unit_orientation(vectors[0] + vectors[1])


def _text(value: object) -> str:
    if value in (None, ""):
        return ""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "/".join(_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return f"{number:g}" if math.isfinite(number) else text
