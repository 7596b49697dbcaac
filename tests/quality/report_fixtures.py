"""Evaluation inputs made from real images that installed packages ship: the coins
photograph of scikit-image (reference = Otsu segmentation; predictions = a tighter or a
graded version) and nibabel's ``anatomical.nii`` brain MRI (reference = its brightest
structure, prediction = that mask shifted by one plane)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.testing import data_path
from PIL import Image
from scipy import ndimage
from skimage import data, filters


def coins_masks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(reference, prediction, probability)`` on the coins photograph (303×384): the
    reference is the Otsu mask, the prediction a tighter threshold, the probability a
    smoothed, rescaled copy of the photograph (uint8, 0–255)."""
    img = data.coins()
    t = filters.threshold_otsu(img)
    ref = ndimage.binary_opening(ndimage.binary_fill_holes(img > t), iterations=2)
    pred = ndimage.binary_opening(ndimage.binary_fill_holes(img > t + 25), iterations=2)
    smooth = ndimage.gaussian_filter(img.astype(np.float64), 2.0)
    prob = np.clip((smooth - t) / 60.0 + 0.5, 0.0, 1.0)
    return ref, pred, np.round(prob * 255).astype(np.uint8)


def save_png(path: Path, array: np.ndarray) -> Path:
    """Save a 2D mask (bool → 0/255) or uint8 image as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (array * 255).astype(np.uint8) if array.dtype == bool else array
    Image.fromarray(arr).save(path)
    return path


def coins_folders(root: Path, n: int = 3, *, roi: bool = True) -> dict[str, Path]:
    """``n`` cases of coin crops (each a different window of the photograph) in
    ``pred/``, ``ref/`` and (optionally) ``roi/`` folders; the ROI is the crop's left
    two thirds. Returns the folders."""
    ref, pred, _ = coins_masks()
    folders = {k: root / k for k in ("pred", "ref", "roi")}
    for i in range(n):
        window = (slice(10 * i, 10 * i + 200), slice(30 * i, 30 * i + 250))
        save_png(folders["ref"] / f"coins_{i}.png", ref[window])
        save_png(folders["pred"] / f"coins_{i}.png", pred[window])
        if roi:
            region = np.zeros((200, 250), bool)
            region[:, :166] = True
            save_png(folders["roi"] / f"coins_{i}.png", region)
    return folders


def head_mask() -> np.ndarray:
    """The largest bright component of ``anatomical.nii`` (33×41×25 voxels) in NIfTI
    ``(i, j, k)`` order, as uint8 0/1."""
    img = nib.load(data_path / "anatomical.nii")
    arr = np.asanyarray(img.dataobj).astype(np.float64)
    mask = ndimage.binary_fill_holes(ndimage.binary_opening(arr > 9000, iterations=1))
    labels, _ = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return (labels == sizes.argmax()).astype(np.uint8)


def shift_k(ijk: np.ndarray) -> np.ndarray:
    """``ijk`` moved by one voxel along ``k`` (the volume's planes), zero-filled."""
    out = np.zeros_like(ijk)
    out[:, :, 1:] = ijk[:, :, :-1]
    return out


def write_nifti(path: Path, ijk: np.ndarray, zooms: tuple[float, float, float]) -> Path:
    """Save ``ijk`` (NIfTI order) with an axis-aligned affine of voxel size ``zooms``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(ijk, np.diag([*zooms, 1.0])), path)
    return path
