"""nnU-Net v2 raw dataset export, re-read with nibabel, SimpleITK and Pillow."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK
from PIL import Image

from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import Code, LabelSpec
from medlabel.core.errors import ConflictError, InvalidInputError
from medlabel.imaging.volume import Volume
from medlabel.io.exportitem import ExportItem, LabelInfo, unique_stems
from medlabel.io.nifti import lps_affine_to_nifti, read_nifti
from medlabel.io.nnunet import write_nnunet
from tests.io.export_fixtures import LABELS, ct_item, enhanced_ct_item, us_item

NN_LABELS = {"background": 0, "liver": 1, "vessel": 2, "tumour": 3}  # values 1, 3, 7 in order
TO_NN = {0: 0, 1: 1, 3: 2, 7: 3}


def _ct_items() -> list[ExportItem]:
    first = ct_item()
    second = dataclasses.replace(enhanced_ct_item(), name="chest CT:1")  # collides after sanitising
    unlabelled = dataclasses.replace(ct_item(), image_id=99, name="no mask", mask=None)
    return [first, second, unlabelled]


def _remap(mask: np.ndarray) -> np.ndarray:
    return np.vectorize(TO_NN.get)(mask)


# edge cases -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dataset_id", "name", "message"),
    [
        (0, "Liver", "1..999"),
        (1000, "Liver", "1..999"),
        (501, "my liver", "no spaces"),
        (501, "", "letters, digits"),
        (501, "../x", "letters, digits"),
    ],
)
def test_refuses_bad_dataset_id_or_name(
    tmp_path: Path, dataset_id: int, name: str, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        write_nnunet([ct_item()], LABELS, tmp_path, dataset_id=dataset_id, dataset_name=name)


def test_refuses_without_masks_and_mixed_dimensions(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="none of the selected images has a mask"):
        write_nnunet(
            [dataclasses.replace(ct_item(), mask=None)],
            LABELS,
            tmp_path,
            dataset_id=501,
            dataset_name="X",
        )
    with pytest.raises(InvalidInputError, match=r"mixes 2D images .*'ultrasound'.* 3D volumes"):
        write_nnunet([ct_item(), us_item()], LABELS, tmp_path, dataset_id=501, dataset_name="X")
    assert not any(tmp_path.iterdir())


def test_refuses_mixed_modalities_background_label_and_existing_folder(tmp_path: Path) -> None:
    ct = ct_item()
    mr = dataclasses.replace(
        ct_item(), image_id=2, volume=ct.volume.with_array(ct.volume.array, modality="MR")
    )
    with pytest.raises(InvalidInputError, match=r"modalities \['CT', 'MR'\]"):
        write_nnunet([ct, mr], LABELS, tmp_path, dataset_id=501, dataset_name="X")
    renamed = [dataclasses.replace(LABELS[0], name="background"), *LABELS[1:]]
    with pytest.raises(InvalidInputError, match="'background'"):
        write_nnunet([ct], renamed, tmp_path, dataset_id=501, dataset_name="X")
    (tmp_path / "Dataset501_X").mkdir()
    (tmp_path / "Dataset501_X" / "old.txt").write_text("x")
    with pytest.raises(ConflictError, match="not empty"):
        write_nnunet([ct], LABELS, tmp_path, dataset_id=501, dataset_name="X")


# 3D CT --------------------------------------------------------------------------------------
def test_3d_dataset_layout_and_dataset_json(tmp_path: Path) -> None:
    summary = write_nnunet(_ct_items(), LABELS, tmp_path, dataset_id=7, dataset_name="Liver")
    root = tmp_path / "Dataset007_Liver"
    assert summary.dataset_dir == root and summary.skipped == ["no mask"]
    doc = json.loads((root / "dataset.json").read_text())
    assert doc["channel_names"] == {"0": "CT"}
    assert doc["labels"] == NN_LABELS
    assert sorted(doc["labels"].values()) == list(range(len(doc["labels"])))  # consecutive
    assert (doc["numTraining"], doc["file_ending"]) == (2, ".nii.gz")
    assert doc["medlabel"]["mask_values"] == {"liver": 1, "vessel": 3, "tumour": 7}
    images = sorted(p.name for p in (root / "imagesTr").iterdir())
    labels = sorted(p.name for p in (root / "labelsTr").iterdir())
    assert images == ["chest_CT_1_0000.nii.gz", "chest_CT_1_12_0000.nii.gz"]
    assert labels == ["chest_CT_1.nii.gz", "chest_CT_1_12.nii.gz"]
    assert doc["medlabel"]["cases"]["chest_CT_1_12"]["image_id"] == 12


def test_3d_images_and_labels_share_the_source_geometry(tmp_path: Path) -> None:
    items = _ct_items()[:2]
    write_nnunet(items, LABELS, tmp_path, dataset_id=7, dataset_name="Liver")
    root = tmp_path / "Dataset007_Liver"
    doc = json.loads((root / "dataset.json").read_text())
    by_id = {it.image_id: it for it in items}
    for case, info in doc["medlabel"]["cases"].items():
        item = by_id[info["image_id"]]
        assert item.mask is not None
        image = nib.load(root / "imagesTr" / f"{case}_0000.nii.gz")
        label = nib.load(root / "labelsTr" / f"{case}.nii.gz")
        # nibabel: same grid for image and label, equal to the source's geometry
        assert image.shape == label.shape == item.volume.spatial_shape[::-1]
        np.testing.assert_allclose(label.affine, image.affine, atol=1e-5)
        np.testing.assert_allclose(image.affine, lps_affine_to_nifti(item.volume.affine), atol=1e-5)
        data = np.asarray(label.dataobj)
        assert set(np.unique(data)) <= set(doc["labels"].values())
        np.testing.assert_array_equal(data.transpose(2, 1, 0), _remap(item.mask))
        np.testing.assert_array_equal(
            np.asarray(image.dataobj).transpose(2, 1, 0), item.volume.array
        )
        # SimpleITK (what nnU-Net reads .nii.gz with) sees identical geometry
        si = SimpleITK.ReadImage(str(root / "imagesTr" / f"{case}_0000.nii.gz"))
        sl = SimpleITK.ReadImage(str(root / "labelsTr" / f"{case}.nii.gz"))
        assert si.GetSize() == sl.GetSize()
        np.testing.assert_allclose(si.GetSpacing(), sl.GetSpacing())
        np.testing.assert_allclose(si.GetOrigin(), sl.GetOrigin())
        np.testing.assert_allclose(si.GetDirection(), sl.GetDirection())
        np.testing.assert_allclose(si.GetSpacing(), item.volume.spacing[::-1], rtol=1e-6)
        np.testing.assert_allclose(si.GetOrigin(), item.volume.origin, atol=1e-4)  # ITK is LPS
        assert read_nifti(root / "imagesTr" / f"{case}_0000.nii.gz").same_grid(item.volume)


def test_calibrated_2d_greyscale_stays_nifti(tmp_path: Path) -> None:
    item = ct_item()
    assert item.mask is not None
    slice_ = dataclasses.replace(
        item,
        volume=Volume(item.volume.array[1:2], item.volume.affine, modality="CT"),
        mask=item.mask[1:2],
        source_datasets=None,
        planes=None,
    )
    summary = write_nnunet([slice_], LABELS, tmp_path, dataset_id=8, dataset_name="Slice")
    assert summary.file_ending == ".nii.gz"
    label = nib.load(summary.dataset_dir / "labelsTr" / "chest_CT_1.nii.gz")
    assert label.shape == (128, 128, 1)


# 2D natural images ---------------------------------------------------------------------------
def test_2d_rgb_uses_png_natural_image_convention(tmp_path: Path) -> None:
    items = [us_item(), us_item(14, "ultrasound (2)")]
    summary = write_nnunet(items, LABELS, tmp_path, dataset_id=120, dataset_name="Echo")
    root = summary.dataset_dir
    doc = json.loads((root / "dataset.json").read_text())
    assert doc["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    assert (doc["file_ending"], doc["numTraining"]) == (".png", 2)
    assert sorted(p.name for p in (root / "imagesTr").iterdir()) == [
        "ultrasound_0000.png",
        "ultrasound_2_0000.png",
    ]
    for case, item in (("ultrasound", items[0]), ("ultrasound_2", items[1])):
        assert item.mask is not None
        image = np.asarray(Image.open(root / "imagesTr" / f"{case}_0000.png"))
        label_img = Image.open(root / "labelsTr" / f"{case}.png")
        assert label_img.mode == "L"
        label = np.asarray(label_img)
        np.testing.assert_array_equal(image, item.volume.array[0])
        assert label.shape == image.shape[:2]
        assert set(np.unique(label)) <= set(doc["labels"].values())
        np.testing.assert_array_equal(label, _remap(item.mask[0]))


# export inputs (exportitem.py) ---------------------------------------------------------------
def test_export_inputs_are_validated_on_construction() -> None:
    item = ct_item()
    with pytest.raises(ValueError, match=r"mask shape \(1, 2, 2\) does not match"):
        ExportItem(1, "x", item.volume, mask=np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="2 plane references for a volume of 3 planes"):
        ExportItem(1, "x", item.volume, planes=[(0, 0), (1, 0)])
    with pytest.raises(ValueError, match="needs a value"):
        LabelInfo("m", LabelKind.MASK, None)
    with pytest.raises(ValueError, match="#rrggbb"):
        LabelInfo("b", LabelKind.BOX, None, "red")


def test_label_info_from_schema_spec() -> None:
    spec = LabelSpec(
        name="Liver",
        kind="mask",
        value=4,
        code=Code(value="10200004", scheme="SCT", meaning="Liver"),
    )
    info = LabelInfo.from_spec(spec, color="#00ff00")
    assert (info.value, info.color, info.code) == (4, "#00ff00", ("10200004", "SCT", "Liver"))


def test_unique_stems_are_safe_and_unique() -> None:
    vol = Volume.from_spacing(np.zeros((1, 2, 2), np.uint8))
    items = [ExportItem(i, name, vol) for i, name in enumerate(["../../etc", "a b", "A_B", ""])]
    assert unique_stems(items) == {0: "etc", 1: "a_b", 2: "A_B_2", 3: "image"}
    with pytest.raises(InvalidInputError, match="exported twice"):
        unique_stems([items[0], items[0]])
