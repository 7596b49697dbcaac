"""CSV tables of classes/notes and boxes/points, re-read with the csv module."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from medlabel.annotation.content import AnnotationContent, Note
from medlabel.io.tables import (
    ANNOTATION_COLUMNS,
    SHAPE_COLUMNS,
    _escape,
    _unescape,
    read_annotations_csv,
    read_shapes_csv,
    write_annotations_csv,
    write_shapes_csv,
)
from tests.io.export_fixtures import ct_item, us_item


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


# edge cases -------------------------------------------------------------------------------
def test_no_content_writes_only_the_header(tmp_path: Path) -> None:
    item = dataclasses.replace(ct_item(), content=AnnotationContent())
    assert write_annotations_csv([item], tmp_path / "a.csv") == 0
    assert write_shapes_csv([], tmp_path / "s.csv") == 0
    assert (tmp_path / "a.csv").read_text(encoding="utf-8").strip() == ",".join(ANNOTATION_COLUMNS)
    assert read_annotations_csv(tmp_path / "a.csv") == []
    assert read_shapes_csv(tmp_path / "s.csv") == []


@pytest.mark.parametrize(
    "text",
    [
        "=SUM(A1)",
        "+1",
        "-2",
        "@cmd",
        "\tx",
        "'=already quoted",
        "''-1",
        "'plain",
        "a=b",
        "-",
        "'",
        "",
    ],
)
def test_formula_escaping_is_undone_exactly(text: str) -> None:
    escaped = _escape(text)
    assert escaped[:1] not in ("=", "+", "-", "@", "\t", "\r")
    assert _unescape(escaped) == text


def test_reader_names_missing_columns(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("image_id,kind\n1,note\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing column"):
        read_annotations_csv(tmp_path / "x.csv")


# classifications and notes -------------------------------------------------------------------
def test_classes_and_notes_round_trip(tmp_path: Path) -> None:
    ct, us = ct_item(), us_item()
    tricky = Note(text='Größe 3,5 cm; "unklar"\nzweite Zeile', label="finding")
    us = dataclasses.replace(
        us, content=us.content.model_copy(update={"notes": [*us.content.notes, tricky]})
    )
    path = tmp_path / "annotations.csv"
    assert write_annotations_csv([ct, us], path) == 1 + 1 + 2 + 2
    raw = _rows(path)
    assert list(raw[0]) == ANNOTATION_COLUMNS
    assert [(r["image_id"], r["kind"], r["label"]) for r in raw] == [
        ("11", "classification", "normal"),
        ("11", "note", "finding"),
        ("13", "classification", "normal"),
        ("13", "classification", "artefact"),
        ("13", "note", ""),
        ("13", "note", "finding"),
    ]
    assert raw[0]["image_name"] == "chest CT/1" and raw[0]["author"] == "alice"
    assert (raw[0]["annotation_id"], raw[0]["revision_id"], raw[0]["source"]) == ("5", "9", "human")
    assert raw[4]["text"].startswith("'=HYPERLINK")  # neutralised for spreadsheets
    assert raw[5]["text"] == tricky.text  # commas, quotes, newline, umlauts survive
    back = read_annotations_csv(path)
    notes = [n for it in (ct, us) for n in it.content.notes]
    assert [r.text for r in back if r.kind == "note"] == [n.text for n in notes]
    assert [r.label for r in back if r.kind == "classification"] == ["normal", "normal", "artefact"]
    (ct_note,) = ct.content.notes
    assert back[1].position == ct_note.position == (1.0, 45.0, 55.0)
    assert back[1].position_mm == ct_note.position_mm
    assert back[4].position is None and back[4].position_mm is None
    assert back[0].text is None and back[0].revision_id == 9


# boxes and points ----------------------------------------------------------------------------
def test_boxes_and_points_round_trip(tmp_path: Path) -> None:
    ct, us = ct_item(), us_item()
    path = tmp_path / "shapes.csv"
    assert write_shapes_csv([ct, us], path) == 2 + 3
    raw = _rows(path)
    assert list(raw[0]) == SHAPE_COLUMNS
    assert [(r["kind"], r["label"]) for r in raw] == [
        ("box", "lesion"),
        ("point", "landmark"),
        ("box", "lesion"),
        ("box", "lesion"),
        ("point", "landmark"),
    ]
    assert raw[1]["end_plane"] == "" and raw[0]["end_plane"] == "1.5"
    back = read_shapes_csv(path)
    boxes = [b for it in (ct, us) for b in it.content.boxes]
    assert [(r.position, r.end, r.position_mm, r.end_mm) for r in back if r.kind == "box"] == [
        (b.start, b.end, b.start_mm, b.end_mm) for b in boxes
    ]
    points = [p for it in (ct, us) for p in it.content.points]
    assert [(r.position, r.position_mm) for r in back if r.kind == "point"] == [
        (p.position, p.position_mm) for p in points
    ]
    assert all(r.end is None for r in back if r.kind == "point")
