"""COCO JSON export and import for 2D images: boxes, masks and image-level classes.

Layout written by :func:`write_coco`::

    out_dir/annotations.json
    out_dir/images/<image name>.png      (8-bit; CT/MR windowed, colour as is)

Conventions
-----------
- ``images[].id`` is medlabel's image id; ``file_name`` is relative to ``images/``.
- Categories are the project's box and mask labels, ids 1..K in schema order; each carries
  ``"medlabel": {"kind", "value", "color"}``.
- A box becomes ``bbox = [x, y, w, h]`` in COCO pixel coordinates (pixel centres at
  +0.5): ``x = start_column + 0.5``, ``w = end_column - start_column``; no segmentation.
- A mask becomes one annotation per label value (or per connected component with
  ``instances=True``) with a compressed RLE segmentation, ``area`` and ``bbox``, and
  ``iscrowd = 0``. pycocotools decodes RLE whatever ``iscrowd`` says; ``iscrowd = 1``
  would make COCOeval ignore the region and detectron2/mmdet drop it from training.
- Image-level classes, points and notes, and provenance, go in the extension
  ``images[].medlabel = {"image_id", "name", "annotation_id", "revision_id", "author",
  "source", "classes": [...], "points": [{"label", "x", "y"}],
  "notes": [{"text", "label", "x", "y"}]}`` (x, y in COCO pixel coordinates).

3D images are refused (not skipped) so an export never silently loses annotations.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from medlabel import __version__
from medlabel.annotation.content import Box, Note, Point
from medlabel.annotation.enums import LabelKind
from medlabel.core.errors import ConflictError, InvalidInputError, TooLargeError
from medlabel.imaging.volume import Volume
from medlabel.imaging.windowing import Window, auto_window, to_display
from medlabel.io.coco_rle import (
    mask_bbox,
    rasterize_polygons,
    rle_counts,
    rle_decode_counts,
    rle_from_string,
    rle_to_string,
)
from medlabel.io.exportitem import ExportItem, LabelInfo, check_mask_values, unique_stems


@dataclass(frozen=True)
class CocoExportSummary:
    """What :func:`write_coco` wrote."""

    annotations_path: Path
    images: int
    annotations: int
    categories: int


@dataclass
class CocoImageAnnotations:
    """Annotations of one COCO image, in medlabel's voxel convention.

    ``boxes`` are 2D boxes (plane -0.5..0.5) in voxel coordinates; ``masks`` maps a
    category name to a boolean ``(height, width)`` mask (all its annotations united).
    """

    coco_id: int
    file_name: str
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    points: list[Point] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    medlabel: dict[str, Any] = field(default_factory=dict)


# export -----------------------------------------------------------------------------------
def _first_float(value: Any) -> float | None:
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def display_image(volume: Volume) -> np.ndarray:
    """8-bit ``(rows, columns)`` or ``(rows, columns, channels)`` view of a 2D volume.

    Greyscale uses the window in ``volume.metadata`` (``window_center``/``window_width``)
    or, for non-8-bit data, an automatic percentile window; MONOCHROME1 is inverted.
    Colour images are kept (scaled to 8 bits when stored deeper).
    """
    plane = volume.array[0]
    if volume.channels > 1:
        return to_display(plane, None)
    grey = plane[..., 0] if plane.ndim == 3 else plane
    center = _first_float(volume.metadata.get("window_center"))
    width = _first_float(volume.metadata.get("window_width"))
    window: Window | None = None
    if center is not None and width is not None and width >= 1:
        window = Window(center, width)
    elif grey.dtype != np.uint8:
        window = auto_window(grey)
    out = to_display(grey, window)
    if str(volume.metadata.get("photometric_interpretation", "")).upper() == "MONOCHROME1":
        out = 255 - out
    return out


def _point_xy(position: Sequence[float]) -> dict[str, float]:
    return {"x": float(position[2]) + 0.5, "y": float(position[1]) + 0.5}


def _extension(item: ExportItem) -> dict[str, Any]:
    c = item.content
    return {
        "image_id": item.image_id,
        "name": item.name,
        "annotation_id": item.annotation_id,
        "revision_id": item.revision_id,
        "author": item.author,
        "source": item.source,
        "classes": list(c.classes),
        "points": [{"label": p.label, **_point_xy(p.position or (0, 0, 0))} for p in c.points],
        "notes": [
            {"text": n.text, "label": n.label, **(_point_xy(n.position) if n.position else {})}
            for n in c.notes
        ],
    }


def _mask_annotations(
    item: ExportItem, categories: dict[str, int], by_value: dict[int, LabelInfo], instances: bool
) -> list[dict[str, Any]]:
    out = []
    assert item.mask is not None
    plane = item.mask[0]
    height, width = plane.shape
    for value in check_mask_values(item, by_value):
        region = plane == value
        parts = [region]
        if instances:
            components, n = ndimage.label(region)
            parts = [components == k for k in range(1, n + 1)]
        for part in parts:
            counts = rle_counts(part)
            out.append(
                {
                    "image_id": item.image_id,
                    "category_id": categories[by_value[value].name],
                    "segmentation": {"size": [height, width], "counts": rle_to_string(counts)},
                    "area": int(part.sum()),
                    "bbox": mask_bbox(part),
                    "iscrowd": 0,
                }
            )
    return out


def _box_annotation(item: ExportItem, box: Box, categories: dict[str, int]) -> dict[str, Any]:
    """``categories`` holds the box labels only."""
    if box.label not in categories:
        raise InvalidInputError(f"image {item.name!r}: box label {box.label!r} is not a box label")
    if box.start is None or box.end is None:
        raise InvalidInputError(f"image {item.name!r}: box {box.label!r} has no voxel corners")
    (_, r0, c0), (_, r1, c1) = box.start, box.end
    w, h = float(c1) - float(c0), float(r1) - float(r0)
    return {
        "image_id": item.image_id,
        "category_id": categories[box.label],
        "bbox": [float(c0) + 0.5, float(r0) + 0.5, w, h],
        "area": w * h,
        "iscrowd": 0,
    }


def write_coco(
    items: Sequence[ExportItem],
    labels: Iterable[LabelInfo],
    out_dir: Path,
    *,
    instances: bool = False,
) -> CocoExportSummary:
    """Write 2D images and their annotations as a COCO dataset into ``out_dir``.

    Parameters
    ----------
    items
        2D images (one plane each) with masks of shape ``(1, rows, columns)``.
    labels
        The project's labels; box and mask labels become categories.
    out_dir
        Directory to write ``annotations.json`` and ``images/`` into (created if needed).
    instances
        One annotation per connected component of each mask label instead of one per
        label (for instance segmentation training).

    Raises
    ------
    InvalidInputError
        A 3D item (named), a box with a non-box label, or a mask value without a label.
    ConflictError
        ``out_dir/annotations.json`` exists already.
    """
    labels = list(labels)
    three_d = [
        f"{it.name!r} ({it.volume.spatial_shape[0]} planes)" for it in items if not it.volume.is_2d
    ]
    if three_d:
        more = " ..." if len(three_d) > 10 else ""
        raise InvalidInputError(
            f"COCO holds 2D images only; these images are 3D: {', '.join(three_d[:10])}{more}. "
            "Export them as NIfTI, DICOM SEG or nnU-Net instead."
        )
    target = Path(out_dir) / "annotations.json"
    if target.exists():
        raise ConflictError(f"{target} exists already; export into an empty folder")
    cats = [lab for lab in labels if lab.kind in (LabelKind.BOX, LabelKind.MASK)]
    categories = {lab.name: i for i, lab in enumerate(cats, start=1)}
    by_value = {lab.value: lab for lab in cats if lab.value is not None}
    box_ids = {lab.name: categories[lab.name] for lab in cats if lab.kind == LabelKind.BOX}
    stems = unique_stems(items)
    images, annotations, pixels = [], [], []
    for item in items:  # everything is checked before the first file is written
        _, height, width = item.volume.spatial_shape
        file_name = f"{stems[item.image_id]}.png"
        pixels.append((file_name, item.volume))
        images.append(
            {
                "id": item.image_id,
                "file_name": file_name,
                "width": width,
                "height": height,
                "medlabel": _extension(item),
            }
        )
        annotations += [_box_annotation(item, box, box_ids) for box in item.content.boxes]
        if item.mask is not None:
            annotations += _mask_annotations(item, categories, by_value, instances)
    images_dir = Path(out_dir) / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for file_name, volume in pixels:
        Image.fromarray(display_image(volume)).save(images_dir / file_name)
    for i, ann in enumerate(annotations, start=1):
        ann["id"] = i
    doc = {
        "info": {
            "description": "medlabel export",
            "version": __version__,
            "contributor": "medlabel",
            "date_created": dt.datetime.now(dt.UTC).isoformat(),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {
                "id": categories[lab.name],
                "name": lab.name,
                "supercategory": lab.kind.value,
                "medlabel": {"kind": lab.kind.value, "value": lab.value, "color": lab.color},
            }
            for lab in cats
        ],
    }
    target.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return CocoExportSummary(target, len(images), len(annotations), len(cats))


# import -----------------------------------------------------------------------------------
def _segmentation(segm: Any, height: int, width: int) -> np.ndarray:
    if isinstance(segm, list):
        return rasterize_polygons(segm, height, width)
    if isinstance(segm, dict) and "counts" in segm:
        size = segm.get("size", [height, width])
        if [int(s) for s in size] != [height, width]:
            raise ValueError(f"RLE size {size} differs from the image's {height}x{width}")
        counts = segm["counts"]
        if isinstance(counts, str):
            counts = rle_from_string(counts)
        return rle_decode_counts(counts, height, width)
    raise ValueError("segmentation must be a list of polygons or an RLE {size, counts}")


def _voxel(x: float, y: float) -> tuple[float, float, float]:
    return (0.0, float(y) - 0.5, float(x) - 0.5)


def _apply_extension(image: CocoImageAnnotations, ext: dict[str, Any]) -> None:
    image.medlabel = ext
    image.classes = [str(c) for c in ext.get("classes", [])]
    image.points += [
        Point(label=p["label"], position=_voxel(p["x"], p["y"])) for p in ext.get("points", [])
    ]
    for n in ext.get("notes", []):
        pos = _voxel(n["x"], n["y"]) if "x" in n and "y" in n else None
        image.notes.append(Note(text=n["text"], label=n.get("label"), position=pos))


def _add_annotation(
    image: CocoImageAnnotations, ann: dict[str, Any], category: dict[str, Any]
) -> None:
    name = str(category["name"])
    kind = (category.get("medlabel") or {}).get("kind")
    segm = ann.get("segmentation")
    if segm and kind != LabelKind.BOX.value:
        mask = _segmentation(segm, image.height, image.width)
        prior = image.masks.get(name)
        image.masks[name] = mask if prior is None else prior | mask
    bbox = ann.get("bbox")
    if bbox and kind != LabelKind.MASK.value:
        x, y, w, h = (float(v) for v in bbox)
        x0, y0 = max(x, 0.0), max(y, 0.0)
        x1, y1 = min(x + w, float(image.width)), min(y + h, float(image.height))
        if x1 > x0 and y1 > y0:
            image.boxes.append(
                Box(label=name, start=(-0.5, *_voxel(x0, y0)[1:]), end=(0.5, *_voxel(x1, y1)[1:]))
            )
    kps, names = ann.get("keypoints") or [], category.get("keypoints") or []
    for i in range(0, len(kps) - 2, 3):
        x, y, v = kps[i : i + 3]
        if v:
            label = str(names[i // 3]) if i // 3 < len(names) else name
            image.points.append(Point(label=label, position=_voxel(x, y)))


def read_coco(
    source: Path | bytes, *, name: str | None = None, max_pixels: int = 500_000_000
) -> list[CocoImageAnnotations]:
    """Read a COCO annotation file (ours or another tool's).

    Accepts polygon, uncompressed and compressed RLE segmentations, bbox-only
    annotations and keypoints. For categories without medlabel's ``kind``, an
    annotation gives a mask (if it has a segmentation) and a box (if it has a bbox);
    boxes are clipped to the image.

    Raises
    ------
    InvalidInputError
        Not JSON, not a COCO layout, or an annotation that refers to a missing image or
        category or has a malformed segmentation (the message names it).
    TooLargeError
        Images adding up to more than ``max_pixels`` pixels.
    """
    label = name or (source.name if isinstance(source, Path) else "COCO data")
    try:
        raw = source if isinstance(source, bytes) else Path(source).read_bytes()
        doc = json.loads(raw.decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{label}: not a readable JSON file ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise InvalidInputError(f"{label}: not a COCO file (no 'images' list)")
    try:
        images = {}
        for entry in doc["images"]:
            img = CocoImageAnnotations(
                int(entry["id"]),
                str(entry.get("file_name", "")),
                int(entry["width"]),
                int(entry["height"]),
            )
            if img.width < 1 or img.height < 1:
                raise ValueError(f"image {img.coco_id} has size {img.width}x{img.height}")
            if isinstance(entry.get("medlabel"), dict):
                _apply_extension(img, entry["medlabel"])
            images[img.coco_id] = img
        categories = {int(c["id"]): c for c in doc.get("categories", [])}
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"{label}: malformed image or category entry ({exc})") from None
    total = sum(i.width * i.height for i in images.values())
    if total > max_pixels:
        raise TooLargeError(f"{label}: images add up to {total:.3g} pixels, above {max_pixels:.3g}")
    for i, ann in enumerate(doc.get("annotations", []) or []):
        try:
            image = images[int(ann["image_id"])]
            category = categories[int(ann["category_id"])]
            _add_annotation(image, ann, category)
        except KeyError as exc:
            raise InvalidInputError(
                f"{label}: annotation {i} (id {ann.get('id')}) refers to a missing image or "
                f"category {exc}"
            ) from None
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"{label}: annotation {i} (id {ann.get('id')}): {exc}"
            ) from None
    return list(images.values())
