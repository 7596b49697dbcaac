"""Bring an array onto another grid that differs only by axis order and direction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def align_to_grid(
    array: np.ndarray,
    affine: np.ndarray,
    target_shape: Sequence[int],
    target_affine: np.ndarray,
    *,
    atol: float = 1e-3,
) -> np.ndarray:
    """Permute and flip the first three axes of ``array`` so it lies on the target grid.

    Masks made by other tools (ITK-SNAP, Slicer, a browser viewer) are often stored in
    another axis order or direction than their image; as long as the voxels coincide
    they can be brought back without resampling.

    Parameters
    ----------
    array
        ``(a, b, c, ...)`` data on the grid described by ``affine`` (voxel → LPS).
    affine, target_affine
        4x4 voxel-to-patient matrices.
    target_shape
        ``(planes, rows, columns)`` of the target grid.
    atol
        Tolerance in mm for voxel positions to coincide.

    Returns
    -------
    numpy.ndarray
        A view of ``array`` with shape ``target_shape`` (plus trailing axes).

    Raises
    ------
    ValueError
        If the grids do not coincide up to a permutation and flips of the axes.

    Examples
    --------
    >>> a = np.arange(6).reshape(1, 2, 3)
    >>> flipped = np.eye(4); flipped[2, 2] = -1; flipped[2, 3] = 2
    >>> align_to_grid(a[:, :, ::-1], flipped, (1, 2, 3), np.eye(4)).tolist()
    [[[0, 1, 2], [3, 4, 5]]]
    """
    src = np.asarray(affine, dtype=np.float64)
    dst = np.asarray(target_affine, dtype=np.float64)
    shape = tuple(int(s) for s in target_shape)
    if array.ndim < 3:
        raise ValueError(f"need at least 3 dimensions; got shape {array.shape}")
    order: list[int] = []
    flips: list[bool] = []
    for a in range(3):
        col = dst[:3, a]
        match = None
        for b in range(3):
            if b in order:
                continue
            if np.allclose(src[:3, b], col, atol=atol):
                match = (b, False)
            elif np.allclose(src[:3, b], -col, atol=atol):
                match = (b, True)
            if match:
                break
        if match is None:
            raise ValueError(
                "the array's grid does not match the image's grid (different spacing or "
                "orientation); resample it onto the image first"
            )
        order.append(match[0])
        flips.append(match[1])
    out = np.transpose(array, order + list(range(3, array.ndim)))
    if out.shape[:3] != shape:
        raise ValueError(f"array shape {out.shape[:3]} (after reorientation) differs from {shape}")
    for axis, flip in enumerate(flips):
        if flip:
            out = np.flip(out, axis=axis)
    # the source voxel now at target index 0 must sit where the target's voxel 0 is
    first = [shape[a] - 1 if flips[a] else 0 for a in range(3)]
    src_index = np.zeros(3)
    for a in range(3):
        src_index[order[a]] = first[a]
    pos_src = src[:3, :3] @ src_index + src[:3, 3]
    if not np.allclose(pos_src, dst[:3, 3], atol=max(atol, 1e-3)):
        raise ValueError(
            f"the array's grid is shifted against the image's by "
            f"{np.round(pos_src - dst[:3, 3], 3).tolist()} mm"
        )
    return out
