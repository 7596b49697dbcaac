"""Training patches: where to cut them, and random spatial and intensity augmentation.

Each patch's random parameters are drawn by :func:`draw` from a generator the trainer
seeds with ``(seed, epoch)``, and returned as a plain dict, so a patch can be
reproduced and inspected. Spatial augmentation (rotation, scaling) and patch extraction
are one interpolation: the patch's sampling grid is rotated and scaled about its centre
in the preprocessed image (linear for intensities, nearest for labels), so no border of
a larger crop is lost. Mirroring and intensity changes follow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from medlabel.engines.deep.planning import Augmentation


def draw(
    rng: np.random.Generator, aug: Augmentation, dims: int, *, enabled: bool = True
) -> dict[str, Any]:
    """Sample the augmentation of one patch (empty-ish dict when nothing applies).

    Examples
    --------
    >>> p = draw(np.random.default_rng(0), Augmentation(p_spatial=1.0), 2)
    >>> sorted(p)
    ['angles', 'brightness', 'contrast', 'gamma', 'mirror', 'noise', 'scale']
    """
    out: dict[str, Any] = {
        "angles": [0.0] * (1 if dims == 2 else 3),
        "scale": 1.0,
        "mirror": [],
        "brightness": None,
        "contrast": None,
        "gamma": None,
        "noise": None,
    }
    if not enabled:
        return out
    if rng.random() < aug.p_spatial:
        n = 1 if dims == 2 else 3
        out["angles"] = [float(a) for a in rng.uniform(-1, 1, n) * aug.rotation_deg]
        out["scale"] = float(rng.uniform(*aug.scale))
    out["mirror"] = [int(a) for a in aug.mirror_axes if rng.random() < 0.5]
    if rng.random() < aug.p_brightness:
        out["brightness"] = float(rng.uniform(*aug.brightness))
    if rng.random() < aug.p_contrast:
        out["contrast"] = float(rng.uniform(*aug.contrast))
    if rng.random() < aug.p_gamma:
        out["gamma"] = float(rng.uniform(*aug.gamma))
    if rng.random() < aug.p_noise:
        out["noise"] = float(rng.uniform(0, aug.noise_std))
    return out


def pick_centre(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    patch: list[int],
    fg_points: dict[int, np.ndarray],
    fg_probability: float,
) -> tuple[np.ndarray, bool]:
    """A patch centre (voxel coordinates): on a random voxel of a random label with
    ``fg_probability``, else anywhere the patch fits. Returns it and whether it was
    foreground-forced."""
    labels = [k for k, v in fg_points.items() if len(v)]
    if labels and rng.random() < fg_probability:
        pts = fg_points[labels[int(rng.integers(len(labels)))]]
        return pts[int(rng.integers(len(pts)))].astype(float), True
    centre = []
    for s, p in zip(shape, patch, strict=True):
        if s <= p:
            centre.append((s - 1) / 2.0)
        else:
            centre.append(float(rng.integers(p // 2, s - (p - p // 2) + 1)))
    return np.array(centre), False


def foreground_points(
    labels: np.ndarray, *, limit: int = 10_000, seed: int = 0
) -> dict[int, np.ndarray]:
    """Up to ``limit`` voxel coordinates of each label (for foreground oversampling)."""
    rng = np.random.default_rng(seed)
    out: dict[int, np.ndarray] = {}
    for value in np.unique(labels):
        if value == 0:
            continue
        idx = np.argwhere(labels == value)
        if len(idx) > limit:
            idx = idx[rng.choice(len(idx), limit, replace=False)]
        out[int(value)] = idx.astype(np.int32)
    return out


def extract(
    image: np.ndarray,
    labels: np.ndarray | None,
    centre: np.ndarray,
    patch: list[int],
    params: dict[str, Any],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cut a patch of ``image`` ``(channels, *spatial)`` and ``labels`` ``(*spatial)``
    centred on ``centre``, with the spatial and intensity changes of ``params`` (from
    :func:`draw`). Outside the image, intensities are 0 and labels 0."""
    dims = len(patch)
    spatial = any(a != 0.0 for a in params["angles"]) or params["scale"] != 1.0
    if spatial:
        img, lab = _warp(image, labels, centre, patch, params)
    else:
        img, lab = _crop(image, labels, centre, patch)
    for axis in params["mirror"]:
        img = np.flip(img, axis=axis + 1)
        if lab is not None:
            lab = np.flip(lab, axis=axis)
    img = np.ascontiguousarray(img, dtype=np.float32)
    if params["brightness"] is not None:
        img *= np.float32(params["brightness"])
    if params["contrast"] is not None:
        for c in range(img.shape[0]):
            m = img[c].mean()
            img[c] = (img[c] - m) * np.float32(params["contrast"]) + m
    if params["gamma"] is not None:
        for c in range(img.shape[0]):
            lo, hi = float(img[c].min()), float(img[c].max())
            if hi - lo > 1e-6:
                unit = (img[c] - lo) / (hi - lo)
                img[c] = unit ** np.float32(params["gamma"]) * (hi - lo) + lo
    if params["noise"]:
        img += rng.normal(0.0, params["noise"], img.shape).astype(np.float32)
    if lab is not None:
        lab = np.ascontiguousarray(lab)
    assert img.shape[1:] == tuple(patch) and img.ndim == dims + 1
    return img, lab


def _crop(
    image: np.ndarray, labels: np.ndarray | None, centre: np.ndarray, patch: list[int]
) -> tuple[np.ndarray, np.ndarray | None]:
    spatial = image.shape[1:]
    starts = [round(c - p / 2.0 + 0.5) for c, p in zip(centre, patch, strict=True)]
    src, dst = [], []
    for st, p, s in zip(starts, patch, spatial, strict=True):
        a, b = max(st, 0), min(st + p, s)
        src.append(slice(a, max(a, b)))
        dst.append(slice(a - st, a - st + max(0, b - a)))
    img = np.zeros((image.shape[0], *patch), np.float32)
    img[(slice(None), *dst)] = image[(slice(None), *src)]
    lab = None
    if labels is not None:
        lab = np.zeros(patch, labels.dtype)
        lab[tuple(dst)] = labels[tuple(src)]
    return img, lab


def rotation(angles: list[float]) -> np.ndarray:
    """Rotation matrix from angles in degrees (one angle in 2D, three in 3D)."""
    rad = np.deg2rad(angles)
    if len(rad) == 1:
        c, s = np.cos(rad[0]), np.sin(rad[0])
        return np.array([[c, -s], [s, c]])
    out = np.eye(3)
    for axis, a in enumerate(rad):
        c, s = np.cos(a), np.sin(a)
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        out = out @ r
    return out


def _warp(
    image: np.ndarray,
    labels: np.ndarray | None,
    centre: np.ndarray,
    patch: list[int],
    params: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray | None]:
    matrix = rotation(params["angles"]) * params["scale"]
    half = (np.array(patch, float) - 1) / 2.0
    offset = centre - matrix @ half
    img = np.stack(
        [
            ndimage.affine_transform(
                ch, matrix, offset=offset, output_shape=tuple(patch), order=1, cval=0.0
            )
            for ch in image
        ]
    ).astype(np.float32)
    lab = None
    if labels is not None:
        lab = ndimage.affine_transform(
            labels, matrix, offset=offset, output_shape=tuple(patch), order=0, cval=0
        )
    return img, lab
