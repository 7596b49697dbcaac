"""Self-configuration rules, patch sampling and augmentation, on small arrays."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep import augment
from medlabel.engines.deep.model_dir import TaskKind, TrainingConfig
from medlabel.engines.deep.planning import (
    Augmentation,
    fingerprint,
    plan_segmentation,
)
from medlabel.engines.deep.tasks import Example, TrainingSet
from medlabel.imaging.volume import Volume


def volume_set(shapes, spacing=(1.0, 1.0, 1.0), modality="MR", radius=4) -> TrainingSet:
    examples = []
    for i, shape in enumerate(shapes):
        rng = np.random.default_rng(i)
        img = rng.normal(100, 10, shape).astype(np.float32)
        lab = np.zeros(shape, np.uint8)
        centre = [s // 2 for s in shape]
        sl = tuple(slice(max(0, c - radius), c + radius) for c in centre)
        lab[sl] = 1
        img[sl] += 50
        vol = Volume.from_spacing(img, spacing=spacing, modality=modality)
        examples.append(Example(f"c{i}", vol, lab))
    return TrainingSet(TaskKind.SEG, examples, {0: "background", 1: "x"})


def test_hippocampus_like_volumes_get_nnunet_like_plan() -> None:
    data = volume_set([(35, 51, 35), (36, 50, 34), (34, 52, 36)])
    fp = fingerprint(data)
    assert fp.dims == 3 and fp.channels == 1 and fp.median_shape == [35.0, 51.0, 35.0]
    plan = plan_segmentation(fp, TrainingConfig(), n_train=3, medsam_available=True)
    assert plan.arch == "dynunet"  # 3D never goes to the 2D encoder
    assert plan.patch_size == [40, 56, 40] and plan.target_spacing == [1.0, 1.0, 1.0]
    assert plan.strides == [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert plan.filters == [16, 32, 64, 128] and plan.batch_size == 2
    assert plan.normalisation.scheme.value == "zscore"
    assert plan.augmentation.mirror_axes == [0, 1, 2]


def test_anisotropic_volumes_keep_the_thick_axis_unpooled_first() -> None:
    data = volume_set([(20, 64, 64)] * 2, spacing=(5.0, 1.0, 1.0))
    plan = plan_segmentation(fingerprint(data), TrainingConfig(), n_train=2, medsam_available=False)
    assert plan.target_spacing == [5.0, 1.0, 1.0]
    assert plan.kernels[0] == [1, 3, 3] and plan.strides[1] == [1, 2, 2]
    assert all(
        p % d == 0 for p, d in zip(plan.patch_size, np.prod(plan.strides, axis=0), strict=True)
    )


def test_ct_gets_clipped_foreground_statistics() -> None:
    data = volume_set([(16, 32, 32)] * 2, modality="CT")
    plan = plan_segmentation(fingerprint(data), TrainingConfig(), n_train=2, medsam_available=False)
    norm = plan.normalisation
    assert norm.scheme.value == "ct" and norm.clip is not None
    assert 140 < norm.mean[0] < 160 and norm.clip[0] < norm.mean[0] < norm.clip[1]


def test_large_2d_images_get_a_patch_within_budget() -> None:
    data = volume_set([(1, 960, 999)] * 2, radius=1)  # thin structures, big photographs
    fp = fingerprint(data)
    assert fp.dims == 2 and fp.thickness < 3
    plan = plan_segmentation(fp, TrainingConfig(), n_train=2, medsam_available=True)
    assert plan.arch == "dynunet"  # too thin for the 64×64 embedding
    assert np.prod(plan.patch_size) <= 70_000 and plan.samples_per_epoch >= 2 * 14


def test_thick_2d_structures_go_to_the_pretrained_encoder() -> None:
    data = volume_set([(1, 96, 128)] * 2, radius=20)
    plan = plan_segmentation(fingerprint(data), TrainingConfig(), n_train=2, medsam_available=True)
    assert plan.arch == "medsam-decoder" and plan.patch_size == [256, 256]
    assert "cells" in plan.reasons["arch"]
    plan = plan_segmentation(fingerprint(data), TrainingConfig(), n_train=2, medsam_available=False)
    assert plan.arch == "dynunet"


def test_medsam_decoder_refuses_volumes() -> None:
    data = volume_set([(8, 16, 16)] * 2)
    with pytest.raises(InvalidInputError, match="2D images only"):
        plan_segmentation(
            fingerprint(data), TrainingConfig(arch="medsam-decoder"), n_train=2,
            medsam_available=True,
        )  # fmt: skip


def test_mixed_channels_are_refused() -> None:
    grey = Volume.from_spacing(np.zeros((1, 8, 8), np.uint8))
    rgb = Volume.from_spacing(np.zeros((1, 8, 8, 3), np.uint8))
    lab = np.ones((1, 8, 8), np.uint8)
    data = TrainingSet(TaskKind.SEG, [Example("a", grey, lab), Example("b", rgb, lab)], {1: "x"})
    with pytest.raises(InvalidInputError, match="mix"):
        fingerprint(data)


# patches and augmentation ----------------------------------------------------------------
def test_crop_is_plain_slicing_and_pads_outside() -> None:
    img = np.arange(2 * 10 * 12, dtype=np.float32).reshape(2, 10, 12)
    lab = (img[0] % 3).astype(np.uint8)
    none = augment.draw(np.random.default_rng(0), Augmentation(), 2, enabled=False)
    rng = np.random.default_rng(0)
    p, q = augment.extract(img, lab, np.array([4.5, 5.5]), [4, 6], none, rng)
    assert np.array_equal(p, img[:, 3:7, 3:9]) and np.array_equal(q, lab[3:7, 3:9])
    p, q = augment.extract(img, lab, np.array([0.0, 0.0]), [4, 4], none, rng)
    assert p[:, :2].sum() == 0 and q[:2].sum() == 0 and np.array_equal(p[:, 2:, 2:], img[:, :2, :2])


def test_identity_warp_equals_crop() -> None:
    img = np.random.default_rng(1).normal(size=(1, 9, 9, 9)).astype(np.float32)
    lab = (img[0] > 0).astype(np.uint8)
    params = augment.draw(np.random.default_rng(0), Augmentation(), 3, enabled=False)
    crop = augment._crop(img, lab, np.array([4.0, 4.0, 4.0]), [5, 5, 5])
    warp = augment._warp(img, lab, np.array([4.0, 4.0, 4.0]), [5, 5, 5], params)
    assert np.allclose(crop[0], warp[0], atol=1e-5) and np.array_equal(crop[1], warp[1])


def test_rotation_keeps_label_values_and_is_reproducible() -> None:
    img = np.zeros((1, 32, 32), np.float32)
    lab = np.zeros((32, 32), np.uint8)
    lab[8:24, 12:20] = 2
    aug = Augmentation(p_spatial=1.0, p_noise=1.0)
    draws = [augment.draw(np.random.default_rng([3, 1]), aug, 2) for _ in range(2)]
    assert draws[0] == draws[1] and draws[0]["angles"][0] != 0
    _, out = augment.extract(img, lab, np.array([16.0, 16.0]), [24, 24], draws[0],
                             np.random.default_rng(0))  # fmt: skip
    assert set(np.unique(out).tolist()) == {0, 2}


def test_foreground_oversampling_centres_on_labels() -> None:
    lab = np.zeros((50, 50), np.uint8)
    lab[40:45, 5:10] = 1
    fg = augment.foreground_points(lab)
    rng = np.random.default_rng(0)
    centres = [augment.pick_centre(rng, lab.shape, [16, 16], fg, 1.0) for _ in range(20)]
    assert all(forced and lab[int(c[0]), int(c[1])] == 1 for c, forced in centres)
    c, forced = augment.pick_centre(rng, (10, 10), [16, 16], {}, 1.0)
    assert not forced and c.tolist() == [4.5, 4.5]
