"""Export items built from real DICOM test files (pydicom, pydicom-data), for io tests.

The volumes are built here from the DICOM attributes (not through medlabel's DICOM
reader) so the export tests do not depend on it.
"""

from __future__ import annotations

import copy

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medlabel.annotation.content import AnnotationContent, Box, Note, Point, normalize_content
from medlabel.annotation.enums import LabelKind
from medlabel.imaging.volume import Volume
from medlabel.io.exportitem import ExportItem, LabelInfo

LABELS = [
    LabelInfo(
        "liver",
        LabelKind.MASK,
        1,
        "#a05030",
        code=("10200004", "SCT", "Liver"),
        category=("91723000", "SCT", "Anatomical Structure"),
    ),
    LabelInfo("tumour", LabelKind.MASK, 7, "#ffff00"),
    LabelInfo("vessel", LabelKind.MASK, 3, "#0000ff"),
    LabelInfo("lesion", LabelKind.BOX, None, "#00ff00"),
    LabelInfo("landmark", LabelKind.POINT, None, "#ff00ff"),
    LabelInfo("normal", LabelKind.CLASSIFICATION, None, "#ffffff"),
    LabelInfo("artefact", LabelKind.CLASSIFICATION, None, "#888888"),
    LabelInfo("finding", LabelKind.NOTE, None, "#123456"),
]
KINDS = {lab.name: lab.kind for lab in LABELS}


def read(name: str) -> pydicom.Dataset:
    path = get_testdata_file(name)
    assert path is not None, f"{name} is not installed (pydicom / pydicom-data)"
    return pydicom.dcmread(path)


def affine_from_dicom(ds: pydicom.Dataset, step_mm: float) -> np.ndarray:
    """(plane, row, column) -> LPS affine of a stack of single-frame slices."""
    iop = np.asarray(ds.ImageOrientationPatient, dtype=np.float64)
    row_dir, col_dir = iop[3:], iop[:3]  # moving down a column / along a row
    dr, dc = (float(v) for v in ds.PixelSpacing)
    normal = np.cross(col_dir, row_dir)
    affine = np.eye(4)
    affine[:3, 0] = normal * step_mm
    affine[:3, 1] = row_dir * dr
    affine[:3, 2] = col_dir * dc
    affine[:3, 3] = np.asarray(ds.ImagePositionPatient, dtype=np.float64)
    return affine


def ct_series(n: int = 3, step_mm: float = 5.0) -> tuple[list[pydicom.Dataset], Volume]:
    """``n`` copies of CT_small.dcm, one series, slices ``step_mm`` apart along +z."""
    base = read("CT_small.dcm")
    series_uid = generate_uid()
    datasets = []
    for i in range(n):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = i + 1
        x, y, z = (float(v) for v in base.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z + step_mm * i]
        datasets.append(ds)
    hu = np.stack(
        [d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in datasets]
    )
    volume = Volume(
        hu.astype(np.int16),
        affine_from_dicom(base, step_mm),
        modality="CT",
        metadata={"window_center": 40, "window_width": 400},
    )
    return datasets, volume


def ct_item(n: int = 3) -> ExportItem:
    """A 3-slice CT with liver (1) on planes 0-1, tumour (7) on plane 1, boxes etc."""
    datasets, volume = ct_series(n)
    mask = np.zeros(volume.spatial_shape, dtype=np.uint16)
    mask[0, 20:60, 30:90] = 1
    mask[1, 25:65, 35:95] = 1
    mask[1, 40:50, 50:60] = 7
    content = AnnotationContent(
        boxes=[Box(label="lesion", start=(0.5, 39.5, 49.5), end=(1.5, 49.5, 59.5))],
        points=[Point(label="landmark", position=(2.0, 64.0, 64.0))],
        classes=["normal"],
        notes=[
            Note(
                text='Hypodense, "ill-defined";\nsee prior',
                label="finding",
                position=(1.0, 45.0, 55.0),
            )
        ],
    )
    content = normalize_content(content, labels=KINDS, shape=mask.shape, affine=volume.affine)
    return ExportItem(
        image_id=11,
        name="chest CT/1",
        volume=volume,
        mask=mask,
        content=content,
        annotation_id=5,
        revision_id=9,
        author="alice",
        source="human",
        source_datasets=datasets,
        planes=[(i, 0) for i in range(n)],
    )


def enhanced_ct_item() -> ExportItem:
    """eCT_Supplemental.dcm (Enhanced CT, 2 frames), planes in reverse frame order."""
    ds = read("eCT_Supplemental.dcm")
    frames = ds.pixel_array.astype(np.int16)[::-1]  # plane 0 = frame 1, plane 1 = frame 0
    shared = ds.SharedFunctionalGroupsSequence[0]
    dr, dc = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    iop = np.asarray(shared.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
    pos = [
        np.asarray(f.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        for f in ds.PerFrameFunctionalGroupsSequence
    ]
    affine = np.eye(4)
    affine[:3, 0] = pos[0] - pos[1]
    affine[:3, 1] = iop[3:] * dr
    affine[:3, 2] = iop[:3] * dc
    affine[:3, 3] = pos[1]
    mask = np.zeros(frames.shape, dtype=np.uint8)
    mask[0, 100:200, 150:300] = 3
    mask[1, 250:260, 250:270] = 1
    return ExportItem(
        image_id=12,
        name="enhanced",
        volume=Volume(frames, affine, modality="CT"),
        mask=mask,
        annotation_id=6,
        revision_id=10,
        author="bob",
        source="engine:threshold@1.2",
        source_datasets=[ds],
        planes=[(0, 1), (0, 0)],
    )


def us_item(image_id: int = 13, name: str = "ultrasound") -> ExportItem:
    """US1_UNCR.dcm: a real 480x640 RGB ultrasound image, as a 2D photo-like item."""
    ds = read("US1_UNCR.dcm")
    rgb = ds.pixel_array[np.newaxis]  # (1, 480, 640, 3) uint8
    volume = Volume.from_spacing(rgb, modality="US", geometry_known=False)
    mask = np.zeros(volume.spatial_shape, dtype=np.uint8)
    mask[0, 100:180, 200:320] = 1  # rectangle
    yy, xx = np.mgrid[0:480, 0:640]
    mask[0][(yy - 300) ** 2 + (xx - 450) ** 2 < 40**2] = 7  # disc
    mask[0, 300:310, 100:110] = 1  # second liver component
    content = AnnotationContent(
        boxes=[
            Box(label="lesion", start=(-0.5, 99.5, 199.5), end=(0.5, 179.5, 319.5)),
            Box(label="lesion", start=(-0.5, 10.25, 20.75), end=(0.5, 30.0, 41.5)),
        ],
        points=[Point(label="landmark", position=(0.0, 12.0, 34.0))],
        classes=["normal", "artefact"],
        notes=[Note(text='=HYPERLINK("x") looks like a formula', label=None)],
    )
    content = normalize_content(content, labels=KINDS, shape=mask.shape, affine=volume.affine)
    return ExportItem(
        image_id=image_id,
        name=name,
        volume=volume,
        mask=mask,
        content=content,
        annotation_id=7,
        revision_id=3,
        author="carol",
        source="human",
        source_datasets=[ds],
        planes=[(0, 0)],
    )
