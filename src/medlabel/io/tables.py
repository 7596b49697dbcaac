"""CSV tables of annotations: classifications and notes, and boxes and points.

Two UTF-8 CSV files with a header row, quoted by the :mod:`csv` module (so commas,
quotes and line breaks in notes survive):

- :func:`write_annotations_csv`: one row per image-level class and per note
  (``kind`` = ``classification`` | ``note``), with the note's position if it has one.
- :func:`write_shapes_csv`: one row per box and per point (``kind`` = ``box`` |
  ``point``); a box's start corner is in the position columns and its end corner in the
  ``end_*`` columns.

Positions are voxel indices ``plane, row, column`` (centres at integers) and patient
coordinates ``x_mm, y_mm, z_mm`` (DICOM LPS). Text cells that a spreadsheet would run as
a formula (starting with ``= + - @``, tab or carriage return) are prefixed with ``'``;
the readers undo this exactly (one ``'`` is added to, and removed from, any text of the
form ``'*`` followed by such a character).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medlabel.io.exportitem import ExportItem

_COMMON = [
    "image_id",
    "image_name",
    "annotation_id",
    "revision_id",
    "author",
    "source",
    "kind",
    "label",
]
_POSITION = ["plane", "row", "column", "x_mm", "y_mm", "z_mm"]
ANNOTATION_COLUMNS = [*_COMMON, "text", *_POSITION]
SHAPE_COLUMNS = [*_COMMON, *_POSITION, *(f"end_{c}" for c in _POSITION)]
_FORMULA = re.compile(r"^'*[=+\-@\t\r]")
Triple = tuple[float, float, float]


@dataclass(frozen=True)
class AnnotationRow:
    """One row of the classifications-and-notes table."""

    image_id: int
    image_name: str
    annotation_id: int | None
    revision_id: int | None
    author: str | None
    source: str
    kind: str
    label: str | None
    text: str | None
    position: Triple | None
    position_mm: Triple | None


@dataclass(frozen=True)
class ShapeRow:
    """One row of the boxes-and-points table (``end`` only for boxes)."""

    image_id: int
    image_name: str
    annotation_id: int | None
    revision_id: int | None
    author: str | None
    source: str
    kind: str
    label: str
    position: Triple | None
    position_mm: Triple | None
    end: Triple | None
    end_mm: Triple | None


def _escape(text: str | None) -> str:
    if text is None:
        return ""
    return "'" + text if _FORMULA.match(text) else text


def _unescape(text: str) -> str:
    return text[1:] if text.startswith("'") and _FORMULA.match(text) else text


def _triple(values: Sequence[float] | None) -> list[str]:
    return ["", "", ""] if values is None else [repr(float(v)) for v in values]


def _common(item: ExportItem, kind: str, label: str | None) -> list[Any]:
    ann = "" if item.annotation_id is None else item.annotation_id
    rev = "" if item.revision_id is None else item.revision_id
    return [
        item.image_id,
        _escape(item.name),
        ann,
        rev,
        _escape(item.author),
        _escape(item.source),
        kind,
        _escape(label),
    ]


def _write(path: Path, header: list[str], rows: Iterable[list[Any]]) -> int:
    n = 0
    with Path(path).open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            n += 1
    return n


def write_annotations_csv(items: Iterable[ExportItem], path: Path) -> int:
    """Write one row per classification and per note of ``items``; return the row count.

    Columns: :data:`ANNOTATION_COLUMNS`.
    """

    def rows() -> Iterable[list[Any]]:
        for item in items:
            for name in item.content.classes:
                yield [*_common(item, "classification", name), "", *_triple(None), *_triple(None)]
            for note in item.content.notes:
                yield [
                    *_common(item, "note", note.label),
                    _escape(note.text),
                    *_triple(note.position),
                    *_triple(note.position_mm),
                ]

    return _write(path, ANNOTATION_COLUMNS, rows())


def write_shapes_csv(items: Iterable[ExportItem], path: Path) -> int:
    """Write one row per box and per point of ``items``; return the row count.

    Columns: :data:`SHAPE_COLUMNS`.
    """

    def rows() -> Iterable[list[Any]]:
        for item in items:
            for box in item.content.boxes:
                yield [
                    *_common(item, "box", box.label),
                    *_triple(box.start),
                    *_triple(box.start_mm),
                    *_triple(box.end),
                    *_triple(box.end_mm),
                ]
            for pt in item.content.points:
                yield [
                    *_common(item, "point", pt.label),
                    *_triple(pt.position),
                    *_triple(pt.position_mm),
                    *_triple(None),
                    *_triple(None),
                ]

    return _write(path, SHAPE_COLUMNS, rows())


def _opt_int(text: str) -> int | None:
    return int(text) if text != "" else None


def _opt_triple(row: dict[str, str], prefix: str, names: Sequence[str]) -> Triple | None:
    cells = [row[prefix + n] for n in names]
    if all(c == "" for c in cells):
        return None
    a, b, c = (float(v) for v in cells)
    if not all(math.isfinite(v) for v in (a, b, c)):
        raise ValueError(f"non-finite coordinate in {[prefix + n for n in names]}")
    return (a, b, c)


def _read(path: Path, header: list[str]) -> list[dict[str, str]]:
    with Path(path).open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in header if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}")
        return list(reader)


def _common_fields(row: dict[str, str]) -> dict[str, Any]:
    return {
        "image_id": int(row["image_id"]),
        "image_name": _unescape(row["image_name"]),
        "annotation_id": _opt_int(row["annotation_id"]),
        "revision_id": _opt_int(row["revision_id"]),
        "author": _unescape(row["author"]) or None,
        "source": _unescape(row["source"]),
        "kind": row["kind"],
    }


def read_annotations_csv(path: Path) -> list[AnnotationRow]:
    """Read a table written by :func:`write_annotations_csv`.

    Raises
    ------
    ValueError
        On a missing column or a malformed number.
    """
    out = []
    for row in _read(path, ANNOTATION_COLUMNS):
        out.append(
            AnnotationRow(
                **_common_fields(row),
                label=_unescape(row["label"]) or None,
                text=_unescape(row["text"]) if row["kind"] == "note" else None,
                position=_opt_triple(row, "", _POSITION[:3]),
                position_mm=_opt_triple(row, "", _POSITION[3:]),
            )
        )
    return out


def read_shapes_csv(path: Path) -> list[ShapeRow]:
    """Read a table written by :func:`write_shapes_csv`.

    Raises
    ------
    ValueError
        On a missing column or a malformed number.
    """
    out = []
    for row in _read(path, SHAPE_COLUMNS):
        out.append(
            ShapeRow(
                **_common_fields(row),
                label=_unescape(row["label"]),
                position=_opt_triple(row, "", _POSITION[:3]),
                position_mm=_opt_triple(row, "", _POSITION[3:]),
                end=_opt_triple(row, "end_", _POSITION[:3]),
                end_mm=_opt_triple(row, "end_", _POSITION[3:]),
            )
        )
    return out


__all__ = [
    "ANNOTATION_COLUMNS",
    "SHAPE_COLUMNS",
    "AnnotationRow",
    "ShapeRow",
    "read_annotations_csv",
    "read_shapes_csv",
    "write_annotations_csv",
    "write_shapes_csv",
]
