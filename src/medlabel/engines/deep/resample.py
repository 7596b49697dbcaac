"""From an image's grid to the network's and back: channels first, resampled to the
target spacing, intensities normalised; predictions resampled to the input's shape.

Arrays here are ``(channels, *spatial)`` with spatial ``(rows, columns)`` for 2D models
and ``(planes, rows, columns)`` for 3D ones. Resampling uses voxel-area alignment
(``grid_mode``): the image's outer edges stay where they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep.model_dir import InputSpec
from medlabel.engines.deep.planning import channel_first
from medlabel.imaging.volume import Volume


def spatial_spacing(volume: Volume, dims: int) -> list[float]:
    """The volume's spacing along the model's spatial axes (mm)."""
    sp = list(volume.spacing)
    return sp[1:] if dims == 2 else sp


def network_array(volume: Volume, spec: InputSpec) -> np.ndarray:
    """``volume`` as the network's input ``(channels, *spatial)``, float32: resampled to
    ``spec.target_spacing`` (linear) and normalised.

    Raises
    ------
    InvalidInputError
        The image does not fit the model (3D image for a 2D model, channel count).
    """
    check_fits(volume, spec)
    arr = channel_first(volume.array)
    if spec.dims == 2:
        arr = arr[:, 0]
    arr = arr.astype(np.float32, copy=False)
    if spec.target_spacing is not None:
        arr = resample(arr, spatial_spacing(volume, spec.dims), spec.target_spacing, order=1)
    return spec.normalisation.apply(arr, channel_axis=0).astype(np.float32, copy=False)


def network_labels(labels: np.ndarray, volume: Volume, spec: InputSpec) -> np.ndarray:
    """A label array ``(planes, rows, columns)`` on the network's grid (nearest)."""
    lab = labels[0] if spec.dims == 2 else labels
    if spec.target_spacing is None:
        return np.ascontiguousarray(lab)
    out = resample(
        lab[np.newaxis], spatial_spacing(volume, spec.dims), spec.target_spacing, order=0
    )
    return np.ascontiguousarray(out[0])


def check_fits(volume: Volume, spec: InputSpec) -> None:
    """Raise :class:`InvalidInputError` naming why ``volume`` cannot go through the model."""
    if spec.dims == 2 and not volume.is_2d:
        raise InvalidInputError(
            f"the model takes 2D images; this image has {volume.spatial_shape[0]} planes"
        )
    if volume.channels != spec.channels:
        what = {1: "greyscale", 3: "colour (RGB)"}
        raise InvalidInputError(
            f"the model takes {what.get(spec.channels, spec.channels)} images; this one is "
            f"{what.get(volume.channels, volume.channels)}"
        )


def resample(
    array: np.ndarray,
    spacing: Sequence[float],
    target: Sequence[float],
    *,
    order: int,
) -> np.ndarray:
    """Resample ``array`` ``(channels, *spatial)`` from ``spacing`` to ``target`` mm.

    Examples
    --------
    >>> resample(np.zeros((1, 10, 20)), [1.0, 1.0], [2.0, 0.5], order=1).shape
    (1, 5, 40)
    """
    factors = np.asarray(spacing, float) / np.asarray(target, float)
    if np.allclose(factors, 1.0, atol=1e-3):
        return array
    shape = np.maximum(np.round(np.array(array.shape[1:]) * factors).astype(int), 1)
    return to_shape(array, tuple(int(s) for s in shape), order=order)


def to_shape(array: np.ndarray, shape: tuple[int, ...], *, order: int) -> np.ndarray:
    """Resample each channel of ``array`` ``(channels, *spatial)`` to ``shape``."""
    if tuple(array.shape[1:]) == tuple(shape):
        return array
    zoom = np.array(shape, float) / np.array(array.shape[1:], float)
    out = np.empty((array.shape[0], *shape), array.dtype)
    for c in range(array.shape[0]):
        z = ndimage.zoom(array[c], zoom, order=order, mode="nearest", grid_mode=True)
        sl = tuple(slice(0, s) for s in shape)
        pad = [(0, max(0, s - zs)) for s, zs in zip(shape, z.shape, strict=True)]
        out[c] = np.pad(z[sl], pad, mode="edge")
    return out
