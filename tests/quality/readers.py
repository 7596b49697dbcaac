"""Several simulated readers' masks of a real structure: the coins of scikit-image's
``coins`` photograph, segmented by Otsu, then each reader draws a little wider, tighter or
misses a coin."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import data, filters


def coins_reference() -> np.ndarray:
    """Labelled coins (one integer per coin) from the real photograph."""
    img = data.coins()
    mask = ndimage.binary_fill_holes(img > filters.threshold_otsu(img))
    mask = ndimage.binary_opening(mask, iterations=2)
    labels, _ = ndimage.label(mask)
    return labels


def reader_masks(seed: int = 0) -> list[np.ndarray]:
    """Four readers' binary masks: generous, tight, one that misses coins, one noisy."""
    labels = coins_reference()
    ref = labels > 0
    rng = np.random.default_rng(seed)
    generous = ndimage.binary_dilation(ref, iterations=2)
    tight = ndimage.binary_erosion(ref, iterations=1)
    missed = ref & ~np.isin(labels, rng.choice(np.arange(1, labels.max() + 1), 4, replace=False))
    flips = rng.random(ref.shape) < 0.02
    noisy = ref ^ (flips & ndimage.binary_dilation(ref, iterations=3))
    return [generous, tight, missed, noisy]
