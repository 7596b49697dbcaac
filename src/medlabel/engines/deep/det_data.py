"""Box tables for detection, matched to a folder of images.

Two formats are read:

- JSON as Kvasir-SEG's ``kavsir_bboxes.json``: ``{image id: {"height": H, "width": W,
  "bbox": [{"label": name, "xmin": .., "ymin": .., "xmax": .., "ymax": ..}, ...]}}``.
  ``height``/``width`` are the image size the boxes refer to; boxes are scaled to the
  size of the image file found (Kvasir's images were resized after boxing). A list of
  such records with an ``"image"`` (or ``"id"``/``"file"``) key is accepted too.
- CSV with an image column (as for classification), ``xmin, ymin, xmax, ymax`` and
  optionally ``label`` (default ``object``) and ``width``/``height`` (the size the box
  refers to); one row per box.

Boxes are ``[x0, y0, x1, y1]`` in pixels of the image file (x along columns, y along
rows, corners continuous: a box of the whole image is ``[0, 0, columns, rows]``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.engines.deep.cls_data import (
    IMAGE_COLUMNS,
    check_2d,
    class_order,
    image_index,
    resolve,
)
from medlabel.engines.deep.model_dir import TaskKind
from medlabel.engines.deep.tasks import Example, FolderSource, Reporter, TrainingSet

_SHOWN = 5
_COORDS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class BoxRecord:
    """The boxes of one image as a table gives them (before scaling)."""

    image: str
    boxes: list[tuple[float, float, float, float]]
    labels: list[str]
    #: (rows, columns) the coordinates refer to, when given
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class BoxTarget:
    """The target of a detection example: ``boxes`` ``(n, 4)`` ``[x0, y0, x1, y1]`` in
    image pixels and their class indices ``(n,)``."""

    boxes: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4 or len(self.classes) != len(self.boxes):
            raise ValueError(
                f"boxes must be (n, 4) with n classes, got {self.boxes.shape} and "
                f"{self.classes.shape}"
            )


def _record_from_json(key: str, value: Any, path: Path) -> BoxRecord:
    if not isinstance(value, dict) or not isinstance(value.get("bbox", []), list):
        raise InvalidInputError(f"{path.name}: entry {key!r} is not {{height, width, bbox: [..]}}")
    boxes, labels = [], []
    for b in value.get("bbox", []):
        try:
            boxes.append(tuple(float(b[c]) for c in _COORDS))
        except (KeyError, TypeError, ValueError):
            raise InvalidInputError(
                f"{path.name}: a box of {key!r} lacks numeric xmin, ymin, xmax, ymax"
            ) from None
        labels.append(str(b.get("label", "object")))
    size = None
    if "height" in value and "width" in value:
        size = (int(value["height"]), int(value["width"]))
    return BoxRecord(key, boxes, labels, size)  # type: ignore[arg-type]


def read_box_table(path: Path) -> list[BoxRecord]:
    """The records of a JSON or CSV box table (see the module docstring).

    Raises
    ------
    NotFoundError
        No such file.
    InvalidInputError
        Not valid JSON/CSV of the expected shape, or a box with ``x1 < x0``/``y1 < y0``.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"label file {path} does not exist")
    records: list[BoxRecord] = []
    if path.suffix.lower() == ".json":
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{path.name}: not valid JSON ({exc})") from None
        if isinstance(payload, list):
            for i, item in enumerate(payload):
                key = next((item.get(k) for k in ("image", "id", "file") if k in item), None)
                if key is None:
                    raise InvalidInputError(f"{path.name}: record {i} has no image/id/file key")
                records.append(_record_from_json(str(key), item, path))
        elif isinstance(payload, dict):
            records = [_record_from_json(str(k), v, path) for k, v in payload.items()]
        else:
            raise InvalidInputError(f"{path.name}: expected an object or a list of records")
    else:
        records = _read_csv(path)
    for r in records:
        for b in r.boxes:
            if b[2] < b[0] or b[3] < b[1]:
                raise InvalidInputError(
                    f"{path.name}: box {list(b)} of {r.image!r} has xmax < xmin or ymax < ymin"
                )
    if not records:
        raise InvalidInputError(f"{path.name}: no boxes")
    return records


def _read_csv(path: Path) -> list[BoxRecord]:
    text = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    rows = [r for r in csv.reader(text) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise InvalidInputError(f"{path.name}: expected a header and at least one row")
    low = [h.strip().lower() for h in rows[0]]
    i_img = next((low.index(n) for n in IMAGE_COLUMNS if n in low), None)
    missing = [c for c in _COORDS if c not in low]
    if i_img is None or missing:
        raise InvalidInputError(
            f"{path.name}: a box CSV needs an image column and xmin, ymin, xmax, ymax; "
            f"header {rows[0]}"
        )
    i_lab = next((low.index(n) for n in ("label", "class", "category") if n in low), None)
    by_image: dict[str, BoxRecord] = {}
    for line, row in enumerate(rows[1:], start=2):
        try:
            box = tuple(float(row[low.index(c)]) for c in _COORDS)
            size = None
            if "width" in low and "height" in low:
                size = (int(float(row[low.index("height")])), int(float(row[low.index("width")])))
        except (ValueError, IndexError):
            raise InvalidInputError(
                f"{path.name}, line {line}: coordinates must be numbers"
            ) from None
        name = row[i_img].strip()
        label = row[i_lab].strip() if i_lab is not None and row[i_lab].strip() else "object"
        rec = by_image.setdefault(name, BoxRecord(name, [], [], size))
        rec.boxes.append(box)  # type: ignore[arg-type]
        rec.labels.append(label)
    return list(by_image.values())


def scale_boxes(
    boxes: Sequence[Sequence[float]], source: tuple[int, int] | None, target: tuple[int, int]
) -> np.ndarray:
    """Boxes given for an image of ``source`` (rows, columns) on an image of ``target``.

    Examples
    --------
    >>> scale_boxes([[10, 20, 30, 40]], (100, 200), (50, 100)).tolist()
    [[5.0, 10.0, 15.0, 20.0]]
    """
    arr = np.asarray(boxes, np.float64).reshape(-1, 4)
    if source is not None and tuple(source) != tuple(target):
        sy, sx = target[0] / source[0], target[1] / source[1]
        arr = arr * np.array([sx, sy, sx, sy])
    arr[:, [0, 2]] = np.clip(arr[:, [0, 2]], 0, target[1])
    arr[:, [1, 3]] = np.clip(arr[:, [1, 3]], 0, target[0])
    return arr


def detection_set(source: FolderSource, reporter: Reporter | None = None) -> TrainingSet:
    """A detection training set: a folder of images and a JSON/CSV box table.

    Raises
    ------
    InvalidInputError
        No table, records naming unknown images, no box at all, unreadable or 3D images.
    """
    from medlabel.engines.deep.datasets import read_image

    if source.labels is None:
        raise InvalidInputError("detection needs a box table (--labels FILE.json or .csv)")
    records = read_box_table(source.labels)
    index = image_index(source.images)
    unknown = [r.image for r in records if resolve(index, r.image) is None]
    if unknown:
        more = f" and {len(unknown) - _SHOWN} more" if len(unknown) > _SHOWN else ""
        raise InvalidInputError(
            f"{len(unknown)} record(s) of {source.labels.name} name no image in "
            f"{source.images}: {', '.join(map(repr, unknown[:_SHOWN]))}{more}"
        )
    classes = class_order([lab for r in records for lab in r.labels])
    if not classes:
        raise InvalidInputError(f"{source.labels.name}: no boxes")
    code = {c: i for i, c in enumerate(classes)}
    examples = []
    for i, r in enumerate(records):
        path = resolve(index, r.image)
        assert path is not None
        image = read_image(path, modality=source.modality)
        check_2d(image, path.name)
        shape = image.spatial_shape[1:]
        boxes = scale_boxes(r.boxes, r.size, (shape[0], shape[1]))
        target = BoxTarget(boxes, np.array([code[lab] for lab in r.labels], np.int64))
        examples.append(Example(path.name.rsplit(".", 1)[0], image, target))
        if reporter is not None:
            reporter.progress(i + 1, len(records), "reading images")
            reporter.check_cancelled()
    return TrainingSet(TaskKind.DET, examples, dict(enumerate(classes)), source=str(source.images))
