"""What the export writers take: one annotated image and the project's labels.

The writers in :mod:`medlabel.io.seg`, :mod:`medlabel.io.coco`,
:mod:`medlabel.io.nnunet` and :mod:`medlabel.io.tables` are pure functions over these
objects; the export service builds them from the database and blob store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pydicom

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.core.errors import InvalidInputError
from medlabel.imaging.volume import Volume

CodeTriple = tuple[str, str, str]
"""A coded concept as ``(code value, coding scheme designator, code meaning)``."""

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class LabelInfo:
    """One label of the project's schema, as the writers need it.

    Parameters
    ----------
    name
        Label name, unique in the project.
    kind
        What the label annotates.
    value
        Integer written in label masks (1..65535) for mask labels, else ``None``.
    color
        Display colour ``"#rrggbb"``.
    code
        Segmented property type, e.g. ``("10200004", "SCT", "Liver")``; DICOM SEG uses
        ``("85756007", "SCT", "Tissue")`` when not given.
    category
        Segmented property category, e.g. ``("91723000", "SCT", "Anatomical Structure")``;
        DICOM SEG uses ``("85756007", "SCT", "Tissue")`` when not given.
    """

    name: str
    kind: LabelKind
    value: int | None
    color: str = "#ff0000"
    code: CodeTriple | None = None
    category: CodeTriple | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", LabelKind(self.kind))
        if not self.name:
            raise ValueError("label name must not be empty")
        if self.kind == LabelKind.MASK:
            if self.value is None or not 1 <= self.value <= 65535:
                raise ValueError(f"mask label {self.name!r} needs a value in 1..65535")
        elif self.value is not None:
            raise ValueError(f"{self.kind.value} label {self.name!r} must not have a value")
        if not _HEX.match(self.color):
            raise ValueError(f"label {self.name!r}: colour must look like #rrggbb")
        for what, triple in (("code", self.code), ("category", self.category)):
            if triple is not None and (len(triple) != 3 or not all(triple)):
                raise ValueError(f"label {self.name!r}: {what} must be (value, scheme, meaning)")

    @classmethod
    def from_spec(cls, spec: LabelSpec, *, color: str = "#ff0000") -> LabelInfo:
        """From a schema :class:`~medlabel.annotation.schema.LabelSpec` whose mask value is
        assigned; ``color`` is used when the spec has none."""
        code = (spec.code.value, spec.code.scheme, spec.code.meaning) if spec.code else None
        return cls(spec.name, spec.kind, spec.value, spec.color or color, code=code)


@dataclass(frozen=True, eq=False)
class ExportItem:
    """One annotated image: pixels, geometry, mask, other content and provenance.

    Parameters
    ----------
    image_id
        The image's id in the project.
    name
        The image's name, unique in the project (sanitised before use in file names).
    volume
        Pixels and geometry.
    mask
        Integer labelmap of shape ``(planes, rows, columns)`` aligned with ``volume``;
        values are :attr:`LabelInfo.value` of mask labels, 0 is background. ``None`` when
        the annotation has no mask.
    content
        Boxes, points, classes and notes (voxel coordinates with centres at integers).
    annotation_id, revision_id, author, source
        Provenance of the exported revision; ``source`` is ``"human"``, ``"import"`` or
        an engine, e.g. ``"engine:threshold@1.0"``.
    source_datasets
        De-identified source DICOM instances (for DICOM SEG), without pixel data needs.
    planes
        For each plane of ``volume``: ``(index into source_datasets, frame index)``,
        frame index 0-based (0 for single-frame instances). Required for DICOM SEG
        export (never guessed from the order of ``source_datasets``).

    Raises
    ------
    ValueError
        When the mask or the plane mapping does not fit the volume.
    """

    image_id: int
    name: str
    volume: Volume
    mask: np.ndarray | None = None
    content: AnnotationContent = field(default_factory=AnnotationContent)
    annotation_id: int | None = None
    revision_id: int | None = None
    author: str | None = None
    source: str = "human"
    source_datasets: Sequence[pydicom.Dataset] | None = None
    planes: Sequence[tuple[int, int]] | None = None

    def __post_init__(self) -> None:
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.shape != self.volume.spatial_shape:
                raise ValueError(
                    f"image {self.name!r}: mask shape {mask.shape} does not match the volume's "
                    f"(planes, rows, columns) {self.volume.spatial_shape}"
                )
            if mask.dtype.kind not in "uib":
                raise ValueError(f"image {self.name!r}: mask must be integer, got {mask.dtype}")
            object.__setattr__(self, "mask", mask)
        if self.planes is not None:
            planes = [(int(i), int(f)) for i, f in self.planes]
            if len(planes) != self.volume.spatial_shape[0]:
                raise ValueError(
                    f"image {self.name!r}: {len(planes)} plane references for a volume of "
                    f"{self.volume.spatial_shape[0]} planes"
                )
            object.__setattr__(self, "planes", planes)


def safe_stem(name: str) -> str:
    """A file-name-safe stem for ``name``: letters, digits, ``.``, ``_`` and ``-`` only.

    Examples
    --------
    >>> safe_stem("chest CT/2024 (1).dcm")
    'chest_CT_2024_1_.dcm'
    >>> safe_stem("../..")
    'image'
    """
    stem = _UNSAFE.sub("_", name).strip("._") or "image"
    return stem[:120]


def unique_stems(
    items: Iterable[ExportItem], *, sanitize: Callable[[str], str] = safe_stem
) -> dict[int, str]:
    """Map each item's ``image_id`` to a unique file stem made by ``sanitize(name)``.

    Stems that collide (case-insensitively, for case-insensitive file systems) get
    ``_<image_id>`` appended.

    Raises
    ------
    InvalidInputError
        When an image id occurs twice.
    """
    out: dict[int, str] = {}
    taken: set[str] = set()
    for item in items:
        if item.image_id in out:
            raise InvalidInputError(f"image id {item.image_id} is exported twice")
        stem = sanitize(item.name)
        while stem.lower() in taken:
            stem = f"{stem}_{item.image_id}"
        taken.add(stem.lower())
        out[item.image_id] = stem
    return out


def mask_labels(labels: Iterable[LabelInfo]) -> list[LabelInfo]:
    """The mask labels, ordered by mask value."""
    return sorted((lab for lab in labels if lab.kind == LabelKind.MASK), key=lambda x: x.value or 0)


def check_mask_values(item: ExportItem, by_value: Mapping[int, LabelInfo]) -> list[int]:
    """Sorted non-zero values of ``item.mask``; raise when one is not a mask label's value.

    Raises
    ------
    InvalidInputError
        When the mask holds a value that no mask label has.
    """
    if item.mask is None:
        return []
    present = [int(v) for v in np.unique(item.mask) if v != 0]
    unknown = [v for v in present if v not in by_value]
    if unknown:
        known = ", ".join(f"{lab.name}={v}" for v, lab in sorted(by_value.items())) or "none"
        raise InvalidInputError(
            f"image {item.name!r}: mask value(s) {unknown} belong to no mask label "
            f"(mask labels: {known})"
        )
    return present
