"""Click corrections on a logit map: each click bends the decision surface near it.

A click at a pixel the mask gets wrong adds a Gaussian bump to the logits there: its
height flips the clicked pixel (plus a ``margin``), its width grows with the size of the
structure. Pixels the model was unsure about next to the click follow; confident pixels
far from it do not move. Clicks apply in order, so the result depends only on the
prompts (no hidden state), and a later click can undo an earlier one's overreach.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: width of a click's bump as a fraction of the structure's equivalent diameter
DEFAULT_REACH = 0.1
#: logit units a click pushes beyond flipping the clicked pixel
DEFAULT_MARGIN = 2.0


def _validate_inputs(logits: np.ndarray, spacing: Sequence[float]) -> None:
    if logits.ndim not in (2, 3):
        raise ValueError(f"logits must be 2D or 3D, got shape {logits.shape}")
    if len(spacing) != logits.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match logits of {logits.ndim} dims")


def mask_logits(mask: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
    """Logits for a mask with no model behind it: the signed distance to its border in
    pixels (positive inside), so that clicks can refine hand-drawn masks too.

    Examples
    --------
    >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
    >>> int((mask_logits(m) > 0).sum())
    9
    """
    m = np.asarray(mask, bool)
    if not m.any():
        return np.full(m.shape, -10.0, np.float32)
    inside = ndimage.distance_transform_edt(m, sampling=spacing)
    outside = ndimage.distance_transform_edt(~m, sampling=spacing)
    out: np.ndarray = np.where(m, inside - 0.5, 0.5 - outside).astype(np.float32)
    return out


def apply_clicks(
    logits: np.ndarray,
    clicks: Sequence[tuple[Sequence[float], bool]],
    *,
    spacing: Sequence[float] | None = None,
    reach: float = DEFAULT_REACH,
    margin: float = DEFAULT_MARGIN,
) -> np.ndarray:
    """Bend ``logits`` (2D or 3D, positive = inside) so each click's pixel is classified
    as the click says.

    Parameters
    ----------
    logits
        Model logits on the image grid.
    clicks
        ``(coordinates, positive)`` pairs in pixel coordinates of ``logits``.
    spacing
        Pixel size along each axis (mm), so bumps are round in space.
    reach
        Bump width (standard deviation) as a fraction of the equivalent diameter of the
        current mask (at least 1.5 pixels).
    margin
        How far beyond zero the clicked pixel is pushed, in logit units.

    Returns
    -------
    np.ndarray
        The corrected logits (float32); ``> 0`` is the mask.

    Examples
    --------
    >>> lg = np.full((9, 9), -1.0, np.float32); lg[3:6, 3:6] = 1.0
    >>> out = apply_clicks(lg, [((4, 7), True)])
    >>> bool(out[4, 7] > 0), bool(out[0, 0] > 0)
    (True, False)
    """
    spacing = tuple(float(s) for s in (spacing or (1.0,) * logits.ndim))
    _validate_inputs(logits, spacing)
    out = np.array(logits, np.float32, copy=True)
    unit = min(spacing)
    for coords, positive in clicks:
        idx = tuple(round(float(c)) for c in coords)
        if len(idx) != out.ndim or not all(0 <= i < n for i, n in zip(idx, out.shape, strict=True)):
            raise ValueError(f"click {tuple(coords)} lies outside the image {out.shape}")
        current = out > 0
        voxel = float(np.prod(spacing))
        size_mm = (max(int(current.sum()), 1) * voxel) ** (1 / out.ndim)
        sigma = max(1.5 * unit, reach * size_mm)
        value = float(out[idx])
        # a click where the mask is already right reinforces it a little
        height = margin / 2 if positive == (value > 0) else abs(value) + margin
        sign = 1.0 if positive else -1.0
        # the bump, evaluated on the box it reaches (3 sigma)
        reach_px = [int(np.ceil(3 * sigma / s)) for s in spacing]
        sl = tuple(
            slice(max(0, i - r), min(n, i + r + 1))
            for i, r, n in zip(idx, reach_px, out.shape, strict=True)
        )
        grids = np.ogrid[sl]
        d2 = sum(((g - i) * s) ** 2 for g, i, s in zip(grids, idx, spacing, strict=True))
        out[sl] += np.float32(sign * height) * np.exp(-d2 / (2 * sigma**2)).astype(np.float32)
    return out
