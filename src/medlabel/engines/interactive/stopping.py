"""When propagation through slices should stop: the structure has ended or drifted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StopRule:
    """Stop when the new slice's mask is empty, shrinks below ``min_area_ratio`` of the
    previous slice's, or overlaps it less than ``min_overlap`` (Dice): the structure
    ended, or the model jumped to something else."""

    min_area_ratio: float = 0.15
    min_overlap: float = 0.3
    min_voxels: int = 3
    #: stop when the median intensity inside the new mask moves more than this many
    #: (robust) standard deviations of the previous slice's structure away from its median
    max_intensity_change: float = 3.0


def intensity_stats(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Robust centre and spread (median, 1.4826 × median absolute deviation) of a greyscale
    (or colour: luminance) slice inside a mask: boundary voxels that mix the structure
    with its surroundings barely move them."""
    img = np.asarray(image, np.float32)
    if img.ndim == 3:
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    values = img[np.asarray(mask, bool)]
    if values.size == 0:
        return 0.0, 0.0
    median = float(np.median(values))
    return median, 1.4826 * float(np.median(np.abs(values - median)))


def should_stop(
    mask: np.ndarray,
    previous: np.ndarray,
    rule: StopRule,
    *,
    intensity: tuple[float, float] | None = None,
    expected: tuple[float, float] | None = None,
) -> tuple[bool, str]:
    """Whether to stop propagating, with a reason for people.

    ``intensity`` is the (median, spread) inside the new mask, ``expected`` the same for the
    previous slice's structure; when both are given, a jump in intensity stops too.

    Examples
    --------
    >>> prev = np.zeros((10, 10), bool); prev[2:8, 2:8] = True
    >>> should_stop(prev, prev, StopRule())
    (False, 'continues')
    >>> should_stop(np.zeros_like(prev), prev, StopRule())
    (True, 'the structure ends here (empty mask)')
    """
    area = int(np.count_nonzero(mask))
    prev_area = int(np.count_nonzero(previous))
    if area < rule.min_voxels:
        return True, "the structure ends here (empty mask)"
    if prev_area and area < rule.min_area_ratio * prev_area:
        return True, f"the mask shrank to {area / prev_area:.0%} of the previous slice"
    inter = int(np.count_nonzero(mask & previous))
    overlap = 2 * inter / (area + prev_area) if area + prev_area else 1.0
    if overlap < rule.min_overlap:
        return True, f"the mask moved away from the previous slice (overlap {overlap:.2f})"
    if intensity is not None and expected is not None:
        mean, _ = intensity
        exp_mean, exp_std = expected
        spread = max(exp_std, 0.02 * abs(exp_mean), 1e-3)
        change = abs(mean - exp_mean) / spread
        if change > rule.max_intensity_change:
            return True, f"the intensity inside changed by {change:.1f} standard deviations"
    return False, "continues"
