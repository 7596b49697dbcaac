"""Real masks for the metric tests, from images that installed packages ship.

* 3D: the MNI ICBM152 2009 tissue probability maps and T1 template that nilearn ships
  (``nilearn/datasets/data``), subsampled to an anisotropic grid. The reference is white
  matter from the probability map; the "prediction" is white matter segmented from the
  T1 intensities, a realistic second opinion that differs along the whole surface.
* 2D: scikit-image's ``coins`` photograph thresholded two ways.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

#: voxel steps (plane, row, column) taken from the 1 mm template, hence the spacing
MNI_STEP = (3, 2, 2)
MNI_SPACING = (3.0, 2.0, 2.0)


def _mni(name: str) -> np.ndarray:
    import nibabel as nib
    import nilearn

    folder = Path(nilearn.__file__).parent / "datasets" / "data"
    path = folder / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
    data = np.asanyarray(nib.load(path).dataobj)
    z, y, x = MNI_STEP
    return np.ascontiguousarray(data[::z, ::y, ::x])


@functools.cache
def mni_images() -> dict[str, np.ndarray]:
    """``wm``, ``gm`` (probabilities 0-255) and ``t1`` (0-255) on the subsampled grid."""
    return {name: _mni(name) for name in ("wm", "gm", "t1")}


@functools.cache
def mni_wm_pair() -> tuple[np.ndarray, np.ndarray]:
    """``(prediction, reference)`` white-matter masks, (66, 117, 95), spacing
    :data:`MNI_SPACING`: reference = WM probability > 50 %, prediction = T1 > 175."""
    img = mni_images()
    ref = img["wm"] > 127
    pred = img["t1"] > 175
    return pred, ref


@functools.cache
def mni_tissue_labels() -> tuple[np.ndarray, np.ndarray]:
    """``(prediction, reference)`` label maps, 0 background, 1 grey matter, 2 white matter:
    reference from the probability maps (the larger one above 50 %), prediction from
    T1 intensity bands."""
    img = mni_images()
    ref = np.zeros(img["wm"].shape, np.uint8)
    ref[(img["gm"] > 127) & (img["gm"] >= img["wm"])] = 1
    ref[(img["wm"] > 127) & (img["wm"] > img["gm"])] = 2
    pred = np.zeros_like(ref)
    t1 = img["t1"]
    pred[(t1 > 100) & (t1 <= 175)] = 1
    pred[t1 > 175] = 2
    return pred, ref


@functools.cache
def coins_pair() -> tuple[np.ndarray, np.ndarray]:
    """``(prediction, reference)`` 2D masks of the coins photograph (303, 384): reference
    = Otsu threshold, prediction = threshold of the smoothed image at a lower level."""
    from scipy import ndimage
    from skimage import data
    from skimage.filters import threshold_otsu

    img = data.coins().astype(float)
    level = threshold_otsu(img)
    ref = img > level
    pred = ndimage.gaussian_filter(img, 2.0) > 0.9 * level
    return pred, ref
