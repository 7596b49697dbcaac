"""Exports re-read with independent readers and compared with what was stored; and
exports imported back as annotations."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pycocotools.coco import COCO

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import Code, LabelSpec
from medlabel.core.errors import ConflictError, InvalidInputError
from medlabel.security.roles import Role
from medlabel.services import annotations as ann_svc
from medlabel.services.access import Principal
from medlabel.services.annotation_imports import import_annotations
from medlabel.services.context import Context
from medlabel.services.exports import export_to_dir
from medlabel.services.imports import ImportOptions, import_paths
from medlabel.services.projects import add_labels, create_project
from medlabel.services.users import create_user, principal_of
from medlabel.storage.db.models import Image

LABELS = [
    LabelSpec(
        name="liver",
        kind=LabelKind.MASK,
        code=Code(value="10200004", scheme="SCT", meaning="Liver"),
    ),
    LabelSpec(name="tumour", kind=LabelKind.MASK),
    LabelSpec(name="nodule", kind=LabelKind.BOX),
    LabelSpec(name="apex", kind=LabelKind.POINT),
    LabelSpec(name="cirrhosis", kind=LabelKind.CLASSIFICATION),
    LabelSpec(name="remark", kind=LabelKind.NOTE),
]


@pytest.fixture
def world(ctx: Context, ct_series: Path, nifti_file: Path, tmp_path: Path) -> dict[str, Any]:
    """A project with a DICOM CT series, a NIfTI MRI and a 2D PNG, each annotated."""
    from PIL import Image as PILImage

    from tests.conftest import sample_file

    user = create_user(ctx, "alice", "correct horse battery", Role.ADMIN)
    actor = principal_of(user)
    project = create_project(ctx, actor, "Export test")
    add_labels(ctx, actor, project.id, LABELS)
    frame = pydicom.dcmread(sample_file("US1_UNCR.dcm")).pixel_array
    png = tmp_path / "frame_01.png"
    PILImage.fromarray(frame).save(png)
    ids = import_paths(ctx, actor, project.id, [ct_series]).image_ids
    ids += import_paths(
        ctx, actor, project.id, [nifti_file], options=ImportOptions(modality="MR")
    ).image_ids
    ids += import_paths(ctx, actor, project.id, [png]).image_ids
    masks = {}
    for image_id in ids:
        with ctx.db.read() as s:
            image = s.get(Image, image_id)
            assert image is not None
        mask = np.zeros(image.shape, np.uint8)
        p, r, c = image.shape
        mask[p // 2, r // 4 : r // 2, c // 4 : c // 2] = 1
        mask[p // 2, r // 2 : r // 2 + 3, c // 2 : c // 2 + 4] = 2
        content = AnnotationContent.model_validate(
            {
                "boxes": [
                    {
                        "label": "nodule",
                        "start": [p // 2 - 0.5, 1.5, 2.5],
                        "end": [p // 2 + 0.5, 5.5, 9.5],
                    }
                ],
                "points": [{"label": "apex", "position": [p // 2, 3, 4]}],
                "classes": ["cirrhosis"],
                "notes": [{"text": 'says "hello", then\nnewline', "label": "remark"}],
            }
        )
        ann_svc.save_annotation(ctx, actor, image_id, content=content, mask=mask)
        masks[image_id] = mask
    return {"actor": actor, "project": project.id, "ids": ids, "masks": masks}


def _image(ctx: Context, image_id: int) -> Image:
    with ctx.db.read() as s:
        image = s.get(Image, image_id)
        assert image is not None
        return image


def test_nifti_labelmaps_have_the_source_geometry(
    ctx: Context, world: dict[str, Any], tmp_path: Path, nifti_file: Path
) -> None:
    out = tmp_path / "nifti"
    summary = export_to_dir(ctx, None, world["project"], "nifti", out)
    assert summary.exported == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert {i["author"] for i in manifest["items"]} == {"alice"}
    # the MRI: label map affine equals the original NIfTI's exactly
    src = nib.load(nifti_file)
    lab = nib.load(out / "labels" / "anatomical.nii.gz")
    assert np.allclose(lab.affine, src.affine, atol=1e-5) and lab.shape == src.shape
    mri_id = world["ids"][1]
    assert np.array_equal(np.asarray(lab.dataobj).transpose(2, 1, 0), world["masks"][mri_id])
    # the DICOM series: label map and exported image share one grid, aligned to the slices
    ct = next(p for p in (out / "labels").iterdir() if "CT" in p.name)
    img = nib.load(out / "images" / ct.name)
    assert np.allclose(nib.load(ct).affine, img.affine)
    labels = sorted(np.unique(np.asarray(nib.load(ct).dataobj)).tolist())
    assert labels == [0, 1, 2]


def test_dicom_seg_references_the_source_and_reimports(
    ctx: Context, world: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "seg"
    summary = export_to_dir(ctx, None, world["project"], "dicom-seg", out)
    # only the DICOM image can become a SEG; the others are reported, not silently lost
    assert summary.exported == 1 and len(summary.skipped) == 2
    (seg_path,) = [out / f for f in summary.files]
    seg = hd.seg.segread(seg_path)
    ct_id = world["ids"][0]
    image = _image(ctx, ct_id)
    sops = {uid for uid, _ in image.plane_sources}
    refs = {
        i.ReferencedSOPInstanceUID
        for s in seg.ReferencedSeriesSequence
        for i in s.ReferencedInstanceSequence
    }
    assert refs <= sops
    labels = {d.SegmentLabel: d for d in seg.SegmentSequence}
    assert set(labels) == {"liver", "tumour"}
    assert labels["liver"].SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    # re-import the SEG as another user's annotation: the same mask comes back
    bob = principal_of(create_user(ctx, "bob", "correct horse battery", Role.ADMIN))
    done = import_annotations(ctx, bob, world["project"], seg_path)
    assert [d.image_id for d in done] == [ct_id]
    rev = ann_svc.get_revision(ctx, bob, done[0].revision_id)
    assert rev.source == "import"
    assert np.array_equal(ann_svc.load_mask(ctx, rev), world["masks"][ct_id])


def test_coco_decodes_with_pycocotools_and_reimports(
    ctx: Context, world: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "coco"
    summary = export_to_dir(ctx, None, world["project"], "coco", out)
    assert summary.exported == 1  # only the 2D PNG is 2D
    coco = COCO(str(out / "annotations.json"))
    png_id = world["ids"][2]
    mask = world["masks"][png_id][0]
    cats = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
    anns = coco.loadAnns(coco.getAnnIds())
    by_cat = {a["category_id"]: a for a in anns if a.get("segmentation")}
    assert np.array_equal(coco.annToMask(by_cat[cats["liver"]]), mask == 1)
    assert np.array_equal(coco.annToMask(by_cat[cats["tumour"]]), mask == 2)
    box = next(a for a in anns if a["category_id"] == cats["nodule"])
    assert box["bbox"] == [3.0, 2.0, 7.0, 4.0]  # x = start col + 0.5, w = end - start
    # re-import as bob
    bob = principal_of(create_user(ctx, "bob", "correct horse battery", Role.ADMIN))
    done = import_annotations(ctx, bob, world["project"], out / "annotations.json")
    rev = ann_svc.get_revision(ctx, bob, done[0].revision_id)
    assert np.array_equal(ann_svc.load_mask(ctx, rev), world["masks"][png_id])
    content = AnnotationContent.model_validate(rev.content)
    assert content.classes == ["cirrhosis"] and content.boxes[0].start == (-0.5, 1.5, 2.5)


def test_csv_of_classes_and_notes(ctx: Context, world: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "csv"
    export_to_dir(ctx, None, world["project"], "csv", out)
    with (out / "annotations.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6  # 3 images x (1 class + 1 note)
    notes = [r for r in rows if r["kind"] == "note"]
    assert {r["text"] for r in notes} == {'says "hello", then\nnewline'}
    with (out / "shapes.csv").open(newline="", encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 6  # 3 boxes + 3 points


@pytest.mark.parametrize(("index", "channel"), [(0, "CT"), (1, "MR")])
def test_nnunet_dataset(
    ctx: Context, world: dict[str, Any], tmp_path: Path, index: int, channel: str
) -> None:
    # one dataset per modality: nnU-Net normalises each input channel its own way
    out = tmp_path / "nnunet"
    summary = export_to_dir(
        ctx, None, world["project"], "nnunet", out, image_ids=[world["ids"][index]], dataset_id=7
    )
    ds = out / "Dataset007_Export_test"
    meta = json.loads((ds / "dataset.json").read_text())
    assert meta["numTraining"] == 1 == summary.exported
    assert meta["channel_names"] == {"0": channel}
    assert meta["labels"] == {"background": 0, "liver": 1, "tumour": 2}
    assert meta["file_ending"] == ".nii.gz"
    for label in (ds / "labelsTr").iterdir():
        image = ds / "imagesTr" / label.name.replace(".nii.gz", "_0000.nii.gz")
        assert np.allclose(nib.load(label).affine, nib.load(image).affine)
        assert set(np.unique(np.asarray(nib.load(label).dataobj))) <= {0, 1, 2}


def test_mixed_2d_and_3d_nnunet_is_refused(
    ctx: Context, world: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError):
        export_to_dir(ctx, None, world["project"], "nnunet", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_export_refuses_a_non_empty_folder_and_unknown_format(
    ctx: Context, world: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(ConflictError):
        export_to_dir(ctx, None, world["project"], "nifti", tmp_path / "full")
    with pytest.raises(InvalidInputError, match="formats"):
        export_to_dir(ctx, None, world["project"], "mp4", tmp_path / "y")


def test_approved_only(ctx: Context, world: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no approved"):
        export_to_dir(ctx, None, world["project"], "csv", tmp_path / "a", which="approved")
    actor: Principal = world["actor"]
    view = ann_svc.list_annotations(ctx, actor, world["ids"][0])[0]
    v = ann_svc.transition(ctx, actor, view.annotation.id, "submit", view.annotation.version)
    ann_svc.transition(ctx, actor, v.annotation.id, "approve", v.annotation.version)
    summary = export_to_dir(ctx, None, world["project"], "csv", tmp_path / "b", which="approved")
    assert summary.exported == 1


def test_nifti_mask_import_by_file_name(
    ctx: Context, world: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "nifti"
    export_to_dir(ctx, None, world["project"], "nifti", out)
    bob = principal_of(create_user(ctx, "bob", "correct horse battery", Role.ADMIN))
    src = out / "labels" / "anatomical.nii.gz"
    renamed = tmp_path / "anatomical_seg.nii.gz"
    renamed.write_bytes(src.read_bytes())
    (done,) = import_annotations(ctx, bob, world["project"], renamed)
    assert done.image_id == world["ids"][1]
    rev = ann_svc.get_revision(ctx, bob, done.revision_id)
    assert np.array_equal(ann_svc.load_mask(ctx, rev), world["masks"][done.image_id])


def test_nifti_mask_of_the_wrong_grid_is_refused(
    ctx: Context, world: dict[str, Any], tmp_path: Path
) -> None:
    from medlabel.imaging.volume import Volume
    from medlabel.io.nifti import write_nifti

    image = _image(ctx, world["ids"][1])
    bad = Volume.from_spacing(np.zeros(image.shape, np.uint8), spacing=(3, 3, 3))
    path = tmp_path / "anatomical.nii.gz"
    write_nifti(bad, path)
    with pytest.raises(InvalidInputError, match="does not fit"):
        import_annotations(ctx, world["actor"], world["project"], path)
