"""Annotation content: label checks, bounds, and voxel ↔ mm coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.annotation.content import AnnotationContent, check_mask, normalize_content
from medlabel.annotation.enums import LabelKind
from medlabel.core.errors import InvalidInputError
from medlabel.imaging.volume import Volume

LABELS = {
    "box": LabelKind.BOX,
    "pt": LabelKind.POINT,
    "cls": LabelKind.CLASSIFICATION,
    "note": LabelKind.NOTE,
    "organ": LabelKind.MASK,
}
VOL = Volume.from_spacing(np.zeros((4, 10, 20)), spacing=(2.5, 0.7, 0.7), origin=(10, 20, -30))


def _norm(data: dict) -> AnnotationContent:
    return normalize_content(
        AnnotationContent.model_validate(data),
        labels=LABELS,
        shape=VOL.spatial_shape,
        affine=VOL.affine,
    )


def test_empty_content() -> None:
    assert _norm({}).is_empty()


def test_mm_input_gives_the_same_voxels_as_voxel_input() -> None:
    start, end = (0.5, 1.5, 2.5), (2.5, 5.5, 9.5)
    by_voxel = _norm({"boxes": [{"label": "box", "start": start, "end": end}]}).boxes[0]
    assert by_voxel.start_mm is not None and by_voxel.end_mm is not None
    by_mm = _norm(
        {"boxes": [{"label": "box", "start_mm": by_voxel.end_mm, "end_mm": by_voxel.start_mm}]}
    ).boxes[0]
    assert by_mm.start == start and by_mm.end == end  # corners sorted whatever the order
    pt = _norm({"points": [{"label": "pt", "position_mm": [10.0, 20.7, -27.5]}]}).points[0]
    assert pt.position == (1.0, 1.0, 0.0)
    assert np.allclose(pt.position_mm, VOL.voxel_to_patient([pt.position])[0])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"classes": ["nope"]}, "unknown label 'nope'"),
        ({"classes": ["box"]}, "is a box label"),
        ({"classes": ["cls", "cls"]}, "twice"),
        ({"points": [{"label": "pt", "position": [4, 0, 0]}]}, "plane 4"),
        ({"boxes": [{"label": "box", "start": [0, 0, 0], "end": [0, 1, 1]}]}, "below"),
        ({"notes": [{"text": "x", "label": "cls"}]}, "classification label"),
        ({"notes": [{"text": "x", "position": [0, -3, 0]}]}, "row -3"),
    ],
)
def test_refusals_name_the_problem(data: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        _norm(data)


def test_check_mask() -> None:
    ok = np.zeros(VOL.spatial_shape, np.uint8)
    ok[0, 0, 0] = 1
    check_mask(ok, shape=VOL.spatial_shape, values={1: "organ"})
    with pytest.raises(InvalidInputError, match=r"\[2\]"):
        check_mask(ok + 1, shape=VOL.spatial_shape, values={1: "organ"})
    with pytest.raises(InvalidInputError, match="does not match"):
        check_mask(ok[:2], shape=VOL.spatial_shape, values={1: "organ"})
    with pytest.raises(InvalidInputError, match="integer"):
        check_mask(ok.astype(float), shape=VOL.spatial_shape, values={1: "organ"})
