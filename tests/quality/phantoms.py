"""Small labelled images written to a test's folder: noisy ellipses (PNG, JPEG) and a
two-structure NIfTI phantom, with their reference masks."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image


def ellipse(
    shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float]
) -> np.ndarray:
    """Boolean ellipse ``(rows, columns)``."""
    r, c = np.ogrid[: shape[0], : shape[1]]
    return ((r - centre[0]) / radii[0]) ** 2 + ((c - centre[1]) / radii[1]) ** 2 <= 1.0


def noisy(mask: np.ndarray, seed: int, inside: float = 180.0, outside: float = 60.0) -> np.ndarray:
    """A uint8 image: ``inside`` on the mask, ``outside`` elsewhere, Gaussian noise."""
    rng = np.random.default_rng(seed)
    img = np.where(mask, inside, outside) + rng.normal(0.0, 12.0, mask.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_pair(
    images: Path,
    masks: Path,
    name: str,
    *,
    seed: int = 0,
    image_ext: str = ".png",
    mask_ext: str = ".png",
    shape: tuple[int, int] = (64, 80),
    rgb: bool = False,
) -> np.ndarray:
    """Write ``name`` image + mask (an off-centre ellipse); returns the mask."""
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centre = (shape[0] / 2 + rng.uniform(-5, 5), shape[1] / 2 + rng.uniform(-5, 5))
    mask = ellipse(shape, centre, (shape[0] / 4, shape[1] / 3.5))
    img = noisy(mask, seed)
    pil = Image.fromarray(np.stack([img] * 3, -1) if rgb else img)
    pil.save(images / f"{name}{image_ext}", quality=95)
    Image.fromarray((mask * 255).astype(np.uint8)).save(masks / f"{name}{mask_ext}", quality=90)
    return mask


def write_nifti_pair(
    images: Path, masks: Path, name: str = "vol_001", *, planes: int = 12
) -> np.ndarray:
    """A ``planes``×40×40 volume with two touching bright blobs labelled 1 and 2
    (``.nii.gz``), widest on the middle plane.

    Returns the labels in Volume order ``(planes, rows, columns)``.
    """
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    p, r, c = np.ogrid[:planes, :40, :40]
    mid, half = planes // 2, 0.75 * planes / 2
    one = ((p - mid) / half) ** 2 + ((r - 20) / 8) ** 2 + ((c - 13) / 6) ** 2 <= 1
    two = (((p - mid) / half) ** 2 + ((r - 20) / 7) ** 2 + ((c - 27) / 6) ** 2 <= 1) & ~one
    labels = np.zeros((planes, 40, 40), np.uint8)
    labels[one], labels[two] = 1, 2
    rng = np.random.default_rng(3)
    img = np.where(one, 200.0, np.where(two, 140.0, 40.0)) + rng.normal(0, 8, labels.shape)
    # Volume (plane, row, column) = NIfTI (k, j, i)
    to_ijk = (2, 1, 0)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    nib.save(
        nib.Nifti1Image(img.astype(np.int16).transpose(to_ijk), affine), images / f"{name}.nii.gz"
    )
    nib.save(nib.Nifti1Image(labels.transpose(to_ijk), affine), masks / f"{name}.nii.gz")
    return labels
