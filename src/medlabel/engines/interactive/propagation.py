"""Propagating a mask from one slice through its neighbours, slice by slice.

Each step asks the engine for the next slice with the previous slice's mask as the
prompt (``propagate`` parameter: the engine takes its box from it) and stops where the
engine or the :class:`StopRule` says the structure ends. A re-propagation after a
correction also stops where the new answer agrees with what a slice already has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlabel.engines import runner
from medlabel.engines.base import AnnotationEngine, EngineRequest, Proposal
from medlabel.imaging.volume import Volume

Bounds = tuple[tuple[float, float, float], tuple[float, float, float]]

#: voxels a propagated mask may extend beyond the rectangle of its bounds
BOUNDS_MARGIN = 1

#: a re-propagation stops once a slice's new mask matches its old one this well (Dice)
CONVERGED_DICE = 0.97


@dataclass(frozen=True)
class Step:
    """One propagated slice: where, what the engine said, and whether it was the last."""

    index: int
    direction: int
    proposal: Proposal
    stop: bool
    reason: str


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int(np.count_nonzero(a & b)) / s


def steps(
    engine: AnnotationEngine,
    volume: Volume,
    mask: np.ndarray,
    *,
    axis: int,
    index: int,
    direction: int,
    params: Mapping[str, Any] | None = None,
    max_slices: int | None = None,
    bounds: Bounds | None = None,
) -> Iterator[Step]:
    """Propagate from slice ``index`` in ``direction`` (+1 or -1), yielding each step.

    ``mask`` (bool, the volume's spatial shape) is updated in place as slices are done,
    so a caller can stop consuming at any time and keep what was done so far.
    ``bounds``, two opposite voxel corners of a 3D box, keeps the walk within the box's
    slices and each slice's mask within its rectangle (plus ``BOUNDS_MARGIN`` voxels).
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction}")
    n = volume.spatial_shape[axis]
    current = np.take(mask, index, axis=axis)
    if not current.any():
        raise ValueError(f"slice {index} has no mask to propagate from")
    lo, hi = 0, n - 1
    keep = None
    if bounds is not None:
        lo, hi, keep = _limits(bounds, mask.shape, axis)
    k = index + direction
    done = 0
    while lo <= k <= hi and (max_slices is None or done < max_slices):
        previous = np.zeros(mask.shape, bool)
        _put(previous, axis, k, current)
        request = EngineRequest(
            axis=axis,
            index=k,
            previous=previous,
            params={**(params or {}), "propagate": True, "from_index": k - direction},
        )
        proposal = runner.run(engine, volume, request)
        new = np.take(proposal.full(mask.shape), k, axis=axis)
        if keep is not None:
            new = new & keep
        stop = bool(proposal.info.get("stop", False))
        reason = str(proposal.info.get("reason", ""))
        old = np.take(mask, k, axis=axis)
        converged = not stop and old.any() and _dice(new, old) >= CONVERGED_DICE
        _put(mask, axis, k, new if not stop else np.zeros_like(new))
        if converged:
            stop, reason = True, "agrees with the slice's existing mask"
        done += 1
        yield Step(index=k, direction=direction, proposal=proposal, stop=stop, reason=reason)
        if stop:
            return
        current = new
        k += direction


def propagate(
    engine: AnnotationEngine,
    volume: Volume,
    mask: np.ndarray,
    *,
    axis: int,
    index: int,
    params: Mapping[str, Any] | None = None,
    on_step: Callable[[Step], None] | None = None,
    bounds: Bounds | None = None,
) -> np.ndarray:
    """Propagate the mask of slice ``index`` both ways; returns the updated 3D mask.

    Parameters
    ----------
    engine
        An engine that takes ``previous`` with the ``propagate`` parameter (LiteMedSAM).
    volume
        The image.
    mask
        Boolean, the volume's spatial shape; slice ``index`` holds the accepted mask.
    axis, index
        The array axis to walk along and the starting slice.
    params
        Extra engine parameters (e.g. the window).
    on_step
        Called after each slice (progress reporting).
    bounds
        A 3D box (two voxel corners) the structure lies in: the walk stays in its
        slices, the masks in its rectangle.
    """
    out = np.array(mask, bool, copy=True)
    for direction in (1, -1):
        walk = steps(
            engine,
            volume,
            out,
            axis=axis,
            index=index,
            direction=direction,
            params=params,
            bounds=bounds,
        )
        for step in walk:
            if on_step is not None:
                on_step(step)
    return out


def _put(arr: np.ndarray, axis: int, k: int, plane: np.ndarray) -> None:
    idx: list[Any] = [slice(None)] * arr.ndim
    idx[axis] = k
    arr[tuple(idx)] = plane


def _limits(bounds: Bounds, shape: tuple[int, ...], axis: int) -> tuple[int, int, np.ndarray]:
    """Slice range along ``axis`` and the in-plane rectangle of a 3D box."""
    a = np.rint(np.minimum(bounds[0], bounds[1])).astype(int)
    b = np.rint(np.maximum(bounds[0], bounds[1])).astype(int)
    others = [ax for ax in range(3) if ax != axis]
    keep = np.zeros((shape[others[0]], shape[others[1]]), bool)
    m = BOUNDS_MARGIN
    keep[
        max(0, a[others[0]] - m) : b[others[0]] + m + 1,
        max(0, a[others[1]] - m) : b[others[1]] + m + 1,
    ] = True
    return max(0, int(a[axis])), min(shape[axis] - 1, int(b[axis])), keep
