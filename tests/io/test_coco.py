"""COCO export/import, cross-checked with pycocotools as the independent reader."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from medlabel.annotation.content import AnnotationContent
from medlabel.core.errors import ConflictError, InvalidInputError
from medlabel.imaging.volume import Volume
from medlabel.imaging.windowing import Window, apply_window
from medlabel.io.coco import read_coco, write_coco
from medlabel.io.coco_rle import (
    rasterize_polygons,
    rle_counts,
    rle_decode_counts,
    rle_from_string,
    rle_to_string,
)
from medlabel.io.exportitem import ExportItem
from tests.io.export_fixtures import LABELS, ct_item, us_item

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),  # pycocotools
]


def _ct_slice_item() -> ExportItem:
    """Plane 1 of the CT item as a 2D greyscale image (window 40/400 in its metadata)."""
    item = ct_item()
    assert item.mask is not None
    vol = item.volume
    affine = vol.affine.copy()
    affine[:3, 3] = vol.voxel_to_patient([[1, 0, 0]])[0]
    volume = Volume(vol.array[1:2], affine, modality="CT", metadata=dict(vol.metadata))
    return dataclasses.replace(
        item,
        image_id=21,
        name="ct slice",
        volume=volume,
        mask=item.mask[1:2],
        source_datasets=None,
        planes=None,
        content=AnnotationContent(classes=["normal"]),
    )


# RLE codec against pycocotools -------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (31, 47), (200, 300)])
def test_rle_matches_pycocotools(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    masks = [
        np.zeros(shape, np.uint8),
        np.ones(shape, np.uint8),
        (rng.random(shape) < 0.3).astype(np.uint8),
    ]
    for m in masks:
        ref = mask_utils.encode(np.asfortranarray(m))
        text = rle_to_string(rle_counts(m))
        assert text == ref["counts"].decode("ascii")
        np.testing.assert_array_equal(rle_decode_counts(rle_from_string(text), *shape), m)


def test_rle_large_counts_and_bad_input() -> None:
    m = np.zeros((1000, 1200), np.uint8)
    m[400:, 900:] = 1
    text = mask_utils.encode(np.asfortranarray(m))["counts"].decode()
    assert rle_to_string(rle_counts(m)) == text
    np.testing.assert_array_equal(rle_decode_counts(rle_from_string(text), 1000, 1200), m)
    with pytest.raises(ValueError, match="add up"):
        rle_decode_counts([3, 4], 2, 2)
    with pytest.raises(ValueError, match="invalid character"):
        rle_from_string("1 2")
    with pytest.raises(ValueError, match="truncated"):
        rle_from_string("1o")  # 'o' - 48 has the continuation bit set


def test_polygon_rasterisation_matches_pycocotools() -> None:
    rect = [10, 20, 50, 20, 50, 60, 10, 60]
    ref = mask_utils.decode(mask_utils.frPyObjects([rect], 100, 80))[..., 0].astype(bool)
    np.testing.assert_array_equal(rasterize_polygons([rect], 100, 80), ref)
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    ellipse = np.stack([60 + 35 * np.cos(angles), 45 + 25 * np.sin(angles)], 1).ravel().tolist()
    ref = mask_utils.decode(mask_utils.frPyObjects([ellipse], 100, 120))[..., 0].astype(bool)
    ours = rasterize_polygons([ellipse], 100, 120)
    assert (ours & ref).sum() / (ours | ref).sum() > 0.97


# edge cases -------------------------------------------------------------------------------
def test_refuses_3d_images_by_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"'chest CT/1' \(3 planes\)"):
        write_coco([us_item(), ct_item()], LABELS, tmp_path)
    assert not (tmp_path / "annotations.json").exists()


def test_refuses_to_overwrite_and_wrong_box_labels(tmp_path: Path) -> None:
    write_coco([us_item()], LABELS, tmp_path)
    with pytest.raises(ConflictError, match="exists already"):
        write_coco([us_item()], LABELS, tmp_path)
    item = us_item()
    wrong = item.content.model_copy(
        update={"boxes": [item.content.boxes[0].model_copy(update={"label": "liver"})]}
    )
    with pytest.raises(InvalidInputError, match="'liver' is not a box label"):
        write_coco([dataclasses.replace(item, content=wrong)], LABELS, tmp_path / "b")


def test_read_refuses_malformed_files() -> None:
    with pytest.raises(InvalidInputError, match="not a readable JSON"):
        read_coco(b"{not json", name="x.json")
    with pytest.raises(InvalidInputError, match="no 'images' list"):
        read_coco(b'{"annotations": []}')
    doc = {
        "images": [{"id": 1, "width": 4, "height": 3}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 9, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}],
    }
    with pytest.raises(
        InvalidInputError, match="annotation 0 \\(id 9\\) refers to a missing image"
    ):
        read_coco(json.dumps(doc).encode())
    doc["annotations"] = [
        {"id": 9, "image_id": 1, "category_id": 1, "segmentation": {"size": [3, 5], "counts": [15]}}
    ]
    with pytest.raises(InvalidInputError, match="RLE size"):
        read_coco(json.dumps(doc).encode())


def test_image_without_annotations_is_kept(tmp_path: Path) -> None:
    item = dataclasses.replace(
        us_item(),
        mask=None,
        content=us_item().content.model_copy(
            update={"boxes": [], "points": [], "classes": [], "notes": []}
        ),
    )
    summary = write_coco([item], LABELS, tmp_path)
    assert (summary.images, summary.annotations) == (1, 0)
    (back,) = read_coco(summary.annotations_path)
    assert back.masks == {} and back.boxes == []


# round trip --------------------------------------------------------------------------------
def test_round_trip_checked_with_pycocotools(tmp_path: Path) -> None:
    us, ct = us_item(), _ct_slice_item()
    summary = write_coco([us, ct], LABELS, tmp_path)
    coco = COCO(str(summary.annotations_path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [
        "liver",
        "tumour",
        "vessel",
        "lesion",
    ]
    ids = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
    names = {v: k for k, v in ids.items()}
    value = {"liver": 1, "tumour": 7}
    for item in (us, ct):
        assert item.mask is not None
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[item.image_id]))
        masks = [a for a in anns if "segmentation" in a]
        assert {names[a["category_id"]] for a in masks} == {"liver", "tumour"}
        for ann in masks:
            expected = item.mask[0] == value[names[ann["category_id"]]]
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), expected)
            rle = coco.annToRLE(ann)
            assert ann["area"] == int(mask_utils.area(rle)) == int(expected.sum())
            np.testing.assert_allclose(ann["bbox"], mask_utils.toBbox(rle))
            assert ann["iscrowd"] == 0
        boxes = [a for a in anns if names[a["category_id"]] == "lesion"]
        assert len(boxes) == len(item.content.boxes)
        for ann, box in zip(boxes, item.content.boxes, strict=True):
            assert box.start is not None and box.end is not None
            x, y, w, h = ann["bbox"]
            assert (x, y) == (box.start[2] + 0.5, box.start[1] + 0.5)
            assert (x + w, y + h) == (box.end[2] + 0.5, box.end[1] + 0.5)
    # the box of the US rectangle covers exactly the same pixels as its mask
    (rect_box,) = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=[13])) if a["bbox"][0] == 200.0]
    assert rect_box["bbox"] == [200.0, 100.0, 120.0, 80.0]
    # image files: RGB kept exactly, CT windowed with the metadata window
    meta = coco.loadImgs([13, 21])
    rgb = np.asarray(Image.open(tmp_path / "images" / meta[0]["file_name"]))
    np.testing.assert_array_equal(rgb, us.volume.array[0])
    grey = np.asarray(Image.open(tmp_path / "images" / meta[1]["file_name"]))
    np.testing.assert_array_equal(grey, apply_window(ct.volume.array[0], Window(40, 400)))
    assert (meta[1]["width"], meta[1]["height"], meta[1]["file_name"]) == (128, 128, "ct_slice.png")


def test_reimport_gives_back_the_annotations(tmp_path: Path) -> None:
    us = us_item()
    assert us.mask is not None
    (back,) = read_coco(write_coco([us], LABELS, tmp_path).annotations_path)
    assert (back.coco_id, back.width, back.height) == (13, 640, 480)
    assert set(back.masks) == {"liver", "tumour"}
    np.testing.assert_array_equal(back.masks["liver"], us.mask[0] == 1)
    np.testing.assert_array_equal(back.masks["tumour"], us.mask[0] == 7)
    assert [(b.label, b.start, b.end) for b in back.boxes] == [
        (b.label, b.start, b.end) for b in us.content.boxes
    ]
    assert back.classes == ["normal", "artefact"]
    assert [(p.label, p.position) for p in back.points] == [("landmark", (0.0, 12.0, 34.0))]
    assert [n.text for n in back.notes] == [n.text for n in us.content.notes]
    assert back.medlabel["revision_id"] == 3 and back.medlabel["author"] == "carol"


def test_instances_split_connected_components(tmp_path: Path) -> None:
    us = us_item()
    summary = write_coco([us], LABELS, tmp_path, instances=True)
    coco = COCO(str(summary.annotations_path))
    liver = coco.loadAnns(coco.getAnnIds(catIds=[1]))
    assert sorted(a["area"] for a in liver) == [100, 9600]
    (back,) = read_coco(summary.annotations_path)
    assert us.mask is not None
    np.testing.assert_array_equal(back.masks["liver"], us.mask[0] == 1)


def test_reads_other_tools_files(tmp_path: Path) -> None:
    """Polygons, crowd RLE with list counts, compressed RLE, bbox-only and keypoints."""
    h, w = 60, 80
    crowd = np.zeros((h, w), np.uint8)
    crowd[5:15, 60:75] = 1
    small = np.zeros((h, w), np.uint8)
    small[40:50, 10:20] = 1
    compressed = mask_utils.encode(np.asfortranarray(small))
    polygon = [10, 10, 40, 10, 40, 30, 10, 30]
    doc = {
        "images": [{"id": 7, "file_name": "a.jpg", "width": w, "height": h}],
        "categories": [
            {"id": 1, "name": "cell"},
            {"id": 2, "name": "person", "keypoints": ["nose", "eye"]},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 1,
                "segmentation": [polygon],
                "bbox": [10, 10, 30, 20],
                "iscrowd": 0,
                "area": 600,
            },
            {
                "id": 2,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 1,
                "bbox": [60, 5, 15, 10],
                "segmentation": {"size": [h, w], "counts": rle_counts(crowd)},
            },
            {
                "id": 3,
                "image_id": 7,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [10, 40, 10, 10],
                "segmentation": {"size": [h, w], "counts": compressed["counts"].decode()},
            },
            {
                "id": 4,
                "image_id": 7,
                "category_id": 2,
                "bbox": [70, 50, 20, 20],
                "keypoints": [5, 6, 2, 0, 0, 0],
            },
        ],
    }
    path = tmp_path / "other.json"
    path.write_text(json.dumps(doc))
    coco = COCO(str(path))
    (img,) = read_coco(path)
    union = np.zeros((h, w), bool)
    for ann in coco.loadAnns([1, 2, 3]):
        union |= coco.annToMask(ann).astype(bool)
    np.testing.assert_array_equal(img.masks["cell"], union)
    assert len(img.boxes) == 4
    person = img.boxes[-1]
    assert person.start == (-0.5, 49.5, 69.5) and person.end == (0.5, 59.5, 79.5)  # clipped
    assert [(p.label, p.position) for p in img.points] == [("nose", (0.0, 5.5, 4.5))]
