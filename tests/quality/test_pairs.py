"""Pairing images with masks by name, and reading masks as the benchmark sees them."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.quality.pairs import load_image, load_labels, pair_files, split_name
from tests.quality.phantoms import write_nifti_pair, write_pair


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_missing_folder(tmp_path: Path) -> None:
    touch(tmp_path / "m", "a.png")
    with pytest.raises(NotFoundError, match="image folder"):
        pair_files(tmp_path / "nope", tmp_path / "m")


def test_empty_folders_and_no_match(tmp_path: Path) -> None:
    touch(tmp_path / "i")
    touch(tmp_path / "m", "a.png")
    with pytest.raises(InvalidInputError, match="no PNG, JPEG, TIFF or NIfTI images"):
        pair_files(tmp_path / "i", tmp_path / "m")
    touch(tmp_path / "i", "b.png")
    with pytest.raises(InvalidInputError, match="same name"):
        pair_files(tmp_path / "i", tmp_path / "m")


def test_stems_match_across_extensions(tmp_path: Path) -> None:
    touch(tmp_path / "i", "b.JPG", "a.jpg", "c.nii.gz", "d.tif", "notes.txt", ".hidden.png")
    touch(tmp_path / "m", "a.jpg", "b.png", "c.nii.gz", "d.gif", "e.png", "README.md")
    p = pair_files(tmp_path / "i", tmp_path / "m")
    assert [(x.name, x.image.name, x.mask.name) for x in p.pairs] == [
        ("a", "a.jpg", "a.jpg"),
        ("b", "b.JPG", "b.png"),
        ("c", "c.nii.gz", "c.nii.gz"),
        ("d", "d.tif", "d.gif"),
    ]
    assert p.unmatched_images == () and p.unmatched_masks == ("e",)


def test_mask_suffix_and_its_hint(tmp_path: Path) -> None:
    touch(tmp_path / "i", "Image_01L.jpg", "Image_01R.jpg")
    touch(tmp_path / "m", "Image_01L_1stHO.png", "Image_01R_1stHO.png")
    with pytest.raises(InvalidInputError, match="--mask-suffix _1stHO"):
        pair_files(tmp_path / "i", tmp_path / "m")
    p = pair_files(tmp_path / "i", tmp_path / "m", mask_suffix="_1stHO")
    assert [x.mask.name for x in p.pairs] == ["Image_01L_1stHO.png", "Image_01R_1stHO.png"]


def test_two_files_with_one_stem_are_ambiguous(tmp_path: Path) -> None:
    touch(tmp_path / "i", "a.png")
    touch(tmp_path / "m", "a.png", "a.nii")
    with pytest.raises(InvalidInputError, match="two files named 'a'"):
        pair_files(tmp_path / "i", tmp_path / "m")


def test_nii_gz_is_one_extension() -> None:
    assert split_name("x.nii.gz") == ("x", ".nii.gz")
    assert split_name("x.nii") == ("x", ".nii")
    assert split_name(".png") is None
    assert split_name("x.gif", (".png",)) is None


def test_jpeg_masks_binarise_above_127(tmp_path: Path) -> None:
    """JPEG blurs mask edges; faint pixels (here 100) are background, not structure."""
    arr = np.zeros((32, 48), np.uint8)
    arr[4:28, 4:20] = 255
    arr[4:28, 28:44] = 100
    Image.fromarray(arr).save(tmp_path / "m.jpg", quality=75)
    Image.fromarray(arr).save(tmp_path / "m.png")
    jpeg = load_labels(tmp_path / "m.jpg", (1, 32, 48))
    assert jpeg.shape == (1, 32, 48) and set(np.unique(jpeg)) == {0, 1}
    assert jpeg[0, 8:24, 8:16].all() and not jpeg[0, :, 24:].any()
    png = load_labels(tmp_path / "m.png")
    assert png[0, 8:24, 30:42].all()  # lossless masks: anything above 0 is inside


def test_png_gif_colour_and_nifti_labels(tmp_path: Path) -> None:
    arr = np.zeros((10, 12), np.uint8)
    arr[2:5, 3:7] = 1  # 0/1 PNG masks look black but are masks
    Image.fromarray(arr).save(tmp_path / "a.png")
    assert load_labels(tmp_path / "a.png").sum() == 12
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[2:5, 3:7, 0] = 255
    Image.fromarray(rgb).save(tmp_path / "b.png")
    assert load_labels(tmp_path / "b.png").sum() == 12
    Image.fromarray(arr * 255).convert("P").save(tmp_path / "c.gif")
    gif = load_labels(tmp_path / "c.gif", (1, 10, 12))
    assert gif.sum() == 12 and gif[0, 2, 3] == 1
    labels = write_nifti_pair(tmp_path / "i", tmp_path / "m")
    got = load_labels(tmp_path / "m" / "vol_001.nii.gz", labels.shape)
    assert np.array_equal(got, labels) and set(np.unique(got)) == {0, 1, 2}
    assert load_image(tmp_path / "i" / "vol_001.nii.gz").spatial_shape == labels.shape


def test_float_nifti_labels_are_rounded(tmp_path: Path) -> None:
    data = np.zeros((4, 5, 6), np.float32)
    data[1, 2, 3] = 1.9999
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "f.nii")
    got = load_labels(tmp_path / "f.nii")
    assert got.dtype.kind == "i" and got.max() == 2 and got.sum() == 2


def test_unreadable_and_mismatched_masks(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(InvalidInputError, match=r"bad\.png"):
        load_labels(tmp_path / "bad.png")
    (tmp_path / "bad.gif").write_bytes(b"GIF89a broken")
    with pytest.raises(InvalidInputError, match=r"bad\.gif"):
        load_labels(tmp_path / "bad.gif")
    mask = write_pair(tmp_path / "i", tmp_path / "m", "x", shape=(30, 40))
    with pytest.raises(InvalidInputError, match=r"mask shape \[1, 30, 40\] differs.*\[1, 40, 30\]"):
        load_labels(tmp_path / "m" / "x.png", (1, 40, 30))
    assert np.array_equal(load_labels(tmp_path / "m" / "x.png")[0], mask)


def test_rgb_images_stay_rgb(tmp_path: Path) -> None:
    write_pair(tmp_path / "i", tmp_path / "m", "x", image_ext=".jpg", rgb=True)
    vol = load_image(tmp_path / "i" / "x.jpg")
    assert vol.is_2d and vol.channels == 3 and vol.spatial_shape == (1, 64, 80)
