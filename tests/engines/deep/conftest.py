"""Tiny real data sets for training tests: crops of scikit-image's photographs with Otsu
masks (2D, PNG), and nibabel's anatomical MRI with multi-Otsu labels (3D, NIfTI).

Training needs the ``train`` extra (torch, MONAI); the tests skip without it, except in
CI, which installs it.
"""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from skimage import data, filters, transform

ANATOMICAL = Path(nib.__file__).parent / "tests" / "data" / "anatomical.nii"


def _need_train_extra() -> None:
    if all(importlib.util.find_spec(m) is not None for m in ("torch", "monai")):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("the train extra (torch, MONAI) is installed in CI")
    pytest.skip("the train extra (torch, MONAI) is not installed")


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedding caches go to the test's folder, never to the user's."""
    monkeypatch.setenv("MEDLABEL_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def train_extra() -> None:
    _need_train_extra()


def coins_crops(n: int = 6, side: int = 40) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` greyscale crops (uint8, ``side``×``side``) of the coins photograph, downscaled
    by 4, with their Otsu masks (0/1)."""
    img = transform.rescale(data.coins(), 0.25, anti_aliasing=True, preserve_range=True)
    img = img.astype(np.uint8)
    out = []
    for i in range(n):
        r, c = (7 * i) % (img.shape[0] - side), (11 * i) % (img.shape[1] - side)
        crop = img[r : r + side, c : c + side]
        mask = (crop > filters.threshold_otsu(img)).astype(np.uint8)
        out.append((crop, mask))
    return out


def write_png_pairs(
    root: Path, pairs: list[tuple[np.ndarray, np.ndarray]], *, suffix: str = ""
) -> tuple[Path, Path]:
    """``root/images/case_i.png`` and ``root/masks/case_i{suffix}.png`` (0/255)."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for i, (img, mask) in enumerate(pairs):
        Image.fromarray(img).save(images / f"case_{i}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(masks / f"case_{i}{suffix}.png")
    return images, masks


def colour_pairs(n: int = 4, side: int = 40) -> list[tuple[np.ndarray, np.ndarray]]:
    """RGB crops of the astronaut photograph (downscaled by 8) with Otsu masks of their
    grey level."""
    img = transform.rescale(
        data.astronaut(), 0.125, anti_aliasing=True, preserve_range=True, channel_axis=2
    ).astype(np.uint8)
    grey = img.mean(axis=2)
    t = filters.threshold_otsu(grey)
    out = []
    for i in range(n):
        r, c = 5 * i, 3 * i
        crop = img[r : r + side, c : c + side]
        out.append(
            (np.ascontiguousarray(crop), (grey[r : r + side, c : c + side] > t).astype(np.uint8))
        )
    return out


def anatomical_labels() -> tuple[nib.Nifti1Image, np.ndarray]:
    """nibabel's anatomical MRI (33×41×25, 2 mm, big-endian int16) and labels 1/2 from
    multi-Otsu thresholds (i, j, k order, uint8)."""
    img = nib.load(str(ANATOMICAL))
    arr = np.asanyarray(img.dataobj).astype(np.float32)
    t1, t2 = filters.threshold_multiotsu(arr, classes=3)
    labels = np.zeros(arr.shape, np.uint8)
    labels[arr > t1] = 1
    labels[arr > t2] = 2
    return img, labels


def write_nifti_cases(root: Path, n: int = 3) -> tuple[Path, Path]:
    """``n`` NIfTI image/label pairs: the anatomical MRI and flipped/shifted copies, with
    its header."""
    img, labels = anatomical_labels()
    arr = np.asanyarray(img.dataobj)
    images, masks = root / "images", root / "labels"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for i in range(n):
        a, lab = arr, labels
        if i % 2 == 1:
            a, lab = a[::-1], lab[::-1]
        if i >= 2:
            a, lab = np.roll(a, 2 * i, axis=1), np.roll(lab, 2 * i, axis=1)
        nib.save(
            nib.Nifti1Image(np.ascontiguousarray(a), img.affine, img.header),
            images / f"mr_{i}.nii.gz",
        )
        lab_img = nib.Nifti1Image(np.ascontiguousarray(lab), img.affine)
        nib.save(lab_img, masks / f"mr_{i}.nii.gz")
    return images, masks


def crops(n: int = 6, side: int = 24) -> dict[str, list[np.ndarray]]:
    """``n`` grey crops per class of the coins and brick photographs, downscaled by 4."""
    out: dict[str, list[np.ndarray]] = {}
    for name, img in (("coins", data.coins()), ("brick", data.brick())):
        small = transform.rescale(img, 0.25, anti_aliasing=True, preserve_range=True)
        small = small.astype(np.uint8)
        out[name] = []
        for i in range(n):
            r, c = (5 * i) % (small.shape[0] - side), (9 * i) % (small.shape[1] - side)
            out[name].append(np.ascontiguousarray(small[r : r + side, c : c + side]))
    return out


@pytest.fixture
def labelled(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    rows = [("image", "label")]
    for name, items in crops().items():
        for i, img in enumerate(items):
            Image.fromarray(img).save(images / f"{name}_{i}.png")
            rows.append((f"{name}_{i}.png", name))
    table = tmp_path / "labels.csv"
    with open(table, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return images, table
