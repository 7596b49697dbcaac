"""Folders of images and masks → training sets; predicted masks → files."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.engines.deep.datasets import list_images, mask_name, segmentation_set, write_mask
from medlabel.engines.deep.tasks import FolderSource
from tests.engines.deep.conftest import ANATOMICAL, coins_crops, write_png_pairs


def test_missing_folders_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        list_images(tmp_path / "nope")
    with pytest.raises(InvalidInputError, match="no PNG"):
        list_images(tmp_path)
    with pytest.raises(InvalidInputError, match="masks"):
        segmentation_set(FolderSource(images=tmp_path))


def test_jpeg_masks_are_thresholded_and_names_kept(tmp_path: Path) -> None:
    images, masks = write_png_pairs(tmp_path, coins_crops(2))
    for p in masks.iterdir():  # as Kvasir ships them: JPEG masks with blurred edges
        Image.open(p).convert("L").save(p.with_suffix(".jpg"), quality=70)
        p.unlink()
    data = segmentation_set(FolderSource(images=images, masks=masks))
    assert [e.name for e in data.examples] == ["case_0", "case_1"]
    assert data.labels == {0: "background", 1: "label 1"}
    assert all(set(np.unique(e.target).tolist()) == {0, 1} for e in data.examples)


def test_wrong_mask_size_is_named(tmp_path: Path) -> None:
    images, masks = write_png_pairs(tmp_path, coins_crops(2))
    Image.new("L", (10, 10)).save(masks / "case_1.png")
    with pytest.raises(InvalidInputError, match=r"case_1\.png: mask shape"):
        segmentation_set(FolderSource(images=images, masks=masks))


def test_empty_masks_are_refused(tmp_path: Path) -> None:
    pairs = [(img, np.zeros_like(m)) for img, m in coins_crops(2)]
    images, masks = write_png_pairs(tmp_path, pairs)
    with pytest.raises(InvalidInputError, match="no labelled voxel"):
        segmentation_set(FolderSource(images=images, masks=masks))


def test_mixed_2d_and_3d_are_refused(tmp_path: Path) -> None:
    images, masks = write_png_pairs(tmp_path, coins_crops(1))
    img = nib.load(str(ANATOMICAL))
    nib.save(img, images / "mr.nii")
    nib.save(nib.Nifti1Image(np.ones(img.shape, np.uint8), img.affine), masks / "mr.nii.gz")
    with pytest.raises(InvalidInputError, match="mix 2D and 3D"):
        segmentation_set(FolderSource(images=images, masks=masks))


def test_mask_names() -> None:
    assert mask_name(Path("Image_01L.jpg")) == "Image_01L.png"
    assert mask_name(Path("a.png")) == "a.png" and mask_name(Path("b.nii")) == "b.nii"


def test_raster_masks_keep_size_and_labels(tmp_path: Path) -> None:
    labels = np.zeros((1, 5, 7), np.uint8)
    labels[0, 1:3, 2:5] = 1
    path = write_mask(Path("x.jpg"), labels, tmp_path)
    assert path.name == "x.png" and np.asarray(Image.open(path)).max() == 255
    labels[0, 4, 6] = 3
    path = write_mask(Path("y.tif"), labels, tmp_path)
    import tifffile

    assert tifffile.imread(path).tolist() == labels[0].tolist()
    with pytest.raises(ValueError, match="one plane"):
        write_mask(Path("z.png"), np.zeros((2, 3, 3), np.uint8), tmp_path)
