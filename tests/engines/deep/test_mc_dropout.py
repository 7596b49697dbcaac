"""Monte-Carlo dropout: the dropout rate of new models, the mode that leaves only dropout
on, stochastic and reproducible samples, ``auto`` on new and old model cards, and clear
errors — on tiny models trained for one epoch on real crops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medlabel.core.errors import InvalidInputError
from tests.engines.deep.conftest import _need_train_extra, coins_crops
from tests.engines.deep.signals import load, old_copy, train_cls, train_seg


@pytest.fixture(scope="module")
def seg_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    _need_train_extra()
    root = tmp_path_factory.mktemp("mc-seg")
    new = train_seg(root, onnx=True)
    return new, old_copy(new, root)


@pytest.fixture(scope="module")
def cls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need_train_extra()
    return train_cls(tmp_path_factory.mktemp("mc-cls"))


def volume(i: int = 0) -> Any:
    from medlabel.imaging.volume import Volume

    img, _ = coins_crops(8)[i]
    return Volume.from_spacing(img[np.newaxis], spacing=[1.0, 1.0, 1.0], geometry_known=False)


# edge cases first ------------------------------------------------------------------------
def test_sample_statistics_edge_cases() -> None:
    from medlabel.engines.deep.mc_dropout import SampleStatistics, sample_statistics

    agree = np.array([[[0.9, 0.2]], [[0.1, 0.8]]]).transpose(1, 0, 2)  # (2, 2 classes, 2)
    mean, ent, mi = sample_statistics(np.concatenate([agree, agree]))
    assert mean.shape == (2, 2) and np.allclose(mi, 0.0, atol=1e-6)
    assert np.all((ent > 0) & (ent < 1))
    opposite = np.array([[1.0, 0.0], [0.0, 1.0]])  # two sure samples that disagree
    assert [float(v) for v in sample_statistics(opposite)[1:]] == [1.0, 1.0]
    with pytest.raises(ValueError, match="samples, classes"):
        sample_statistics(np.ones(3))
    # the running statistics equal the direct formulas on random samples
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1.0, 1.0, 1.0], size=(5, 4, 6)).transpose(0, 3, 1, 2)  # (5, 3, 4, 6)
    mean, ent, mi = sample_statistics(p)
    m = p.mean(axis=0)
    h_mean = -(m * np.log(m)).sum(axis=0) / np.log(3)
    h_each = (-(p * np.log(p)).sum(axis=1) / np.log(3)).mean(axis=0)
    assert np.allclose(mean, m, atol=1e-6) and np.allclose(ent, h_mean, atol=1e-5)
    assert np.allclose(mi, np.clip(h_mean - h_each, 0, 1), atol=1e-5)
    acc = SampleStatistics()
    with pytest.raises(ValueError, match="no samples"):
        acc.result()
    acc.add(p[0])
    with pytest.raises(ValueError, match="like"):
        acc.add(p[0, :2])


def test_method_names_and_resolution() -> None:
    from medlabel.engines.deep.mc_dropout import UncertaintyMethod, resolve_method

    with pytest.raises(InvalidInputError, match="unknown uncertainty method 'bald'"):
        resolve_method("bald", dropout=True)
    with pytest.raises(InvalidInputError, match="needs a network with dropout"):
        resolve_method("mc-dropout", dropout=False)
    assert resolve_method("auto", dropout=True)[0] == UncertaintyMethod.MC_DROPOUT
    assert resolve_method("auto", dropout=False)[0] == UncertaintyMethod.TTA
    # ONNX Runtime has no dropout at inference: test-time augmentation, reason recorded
    chosen, why = resolve_method("mc-dropout", dropout=True, torch_net=False)
    assert chosen == UncertaintyMethod.TTA and "ONNX" in why


def test_plans_record_dropout() -> None:
    from medlabel.engines.deep.model_dir import TrainingConfig
    from medlabel.engines.deep.planning import DEFAULT_DROPOUT, SegPlan, _dropout

    assert 0.0 < DEFAULT_DROPOUT <= 0.2
    assert _dropout(TrainingConfig()) == DEFAULT_DROPOUT
    assert _dropout(TrainingConfig(options={"dropout": 0})) == 0.0
    with pytest.raises(InvalidInputError, match="dropout must be within"):
        _dropout(TrainingConfig(options={"dropout": 1.5}))
    with pytest.raises(InvalidInputError, match="must be a number"):
        _dropout(TrainingConfig(options={"dropout": "lots"}))
    old = {"arch": "dynunet", "dims": 2, "channels": 1, "modality": "OT"}
    old |= {"target_spacing": None, "patch_size": [8, 8], "batch_size": 2}
    old |= {"normalisation": {"scheme": "zscore"}, "n_classes": 2, "label_values": [0, 1]}
    old |= {"samples_per_epoch": 4, "max_epochs": 1, "patience": 1, "learning_rate": 0.1}
    assert SegPlan.model_validate(old).dropout == 0.0  # plans written before it


def test_bottleneck_dropout_adds_no_parameters(train_extra: None) -> None:
    from medlabel.engines.deep.mc_dropout import dropout_layers
    from medlabel.engines.deep.networks import build

    for name, params in (
        ("dynunet", {"kernels": [[3, 3]] * 3, "strides": [[1, 1], [2, 2], [2, 2]]}),
        ("unet", {"channels": [4, 8, 16]}),
    ):
        if name == "dynunet":
            params["filters"] = [4, 8, 16]
        common = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2, **params}
        plain, dropped = build(name, common), build(name, {**common, "dropout": 0.2})
        assert not dropout_layers(plain) and len(dropout_layers(dropped)) == 1
        assert list(plain.state_dict()) == list(dropped.state_dict())
        dropped.load_state_dict(plain.state_dict())  # old weights load unchanged
    with pytest.raises(InvalidInputError, match="dropout must be within"):
        build("unet", {**common, "dropout": 1.0})


# segmentation ----------------------------------------------------------------------------
def test_new_models_have_dropout_old_cards_do_not(seg_dirs: tuple[Path, Path]) -> None:
    from medlabel.engines.deep.mc_dropout import has_dropout
    from medlabel.engines.deep.planning import DEFAULT_DROPOUT

    new, old = (load(d) for d in seg_dirs)
    assert new.card.architecture.params["dropout"] == DEFAULT_DROPOUT
    assert new.card.plan["dropout"] == DEFAULT_DROPOUT
    assert has_dropout(new.torch_network) and not has_dropout(old.torch_network)
    # dropout is off in ordinary prediction: the same labels every time, old or new
    v = volume()
    assert np.array_equal(new.predict(v), new.predict(v))
    assert np.array_equal(new.predict(v), old.predict(v))


def test_mc_mode_switches_only_dropout_and_restores_eval(seg_dirs: tuple[Path, Path]) -> None:
    import torch

    from medlabel.engines.deep.mc_dropout import dropout_layers, mc_dropout_mode

    net = load(seg_dirs[0]).torch_network
    norms = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert norms
    with mc_dropout_mode(net):
        assert all(m.training for m in dropout_layers(net))
        assert not any(m.training for m in norms)
        assert not any(m.training for m in net.modules() if not dropout_layers(m))
    assert not any(m.training for m in net.modules())
    old = load(seg_dirs[1]).torch_network
    with pytest.raises(InvalidInputError, match="dropout layers"), mc_dropout_mode(old):
        pass


def test_mc_dropout_samples_differ_and_are_seeded(seg_dirs: tuple[Path, Path]) -> None:
    import torch

    from medlabel.engines.deep.uncertainty import predict_with_uncertainty

    model, v = load(seg_dirs[0]), volume()
    state = torch.random.get_rng_state()
    a = predict_with_uncertainty(model, v, method="mc-dropout", samples=4, seed=7)
    assert torch.equal(state, torch.random.get_rng_state())  # the global generator is kept
    b = predict_with_uncertainty(model, v, method="mc-dropout", samples=4, seed=7)
    c = predict_with_uncertainty(model, v, method="mc-dropout", samples=4, seed=8)
    assert a.info["uncertainty_method"] == "mc-dropout" and a.samples == 4
    assert a.info["uncertainty_samples"] == 4 and a.info["mc_seed"] == 7
    assert np.array_equal(a.probabilities, b.probabilities)
    assert not np.array_equal(a.probabilities, c.probabilities)
    assert a.mutual_information is not None and a.mutual_information.max() > 0
    assert a.labels.shape == v.array.shape and a.entropy.shape == v.array.shape
    assert 0.0 <= a.uncertainty() <= 1.0 and a.info["mutual_information"] == round(a.bald(), 4)
    assert not any(m.training for m in model.torch_network.modules())
    both = predict_with_uncertainty(model, v, method="tta+mc-dropout", samples=3)
    assert both.info["uncertainty_method"] == "tta+mc-dropout" and both.samples == 3
    with pytest.raises(InvalidInputError, match="at least 2 samples"):
        predict_with_uncertainty(model, v, method="mc-dropout", samples=1)


def test_auto_picks_mc_dropout_new_and_tta_old(seg_dirs: tuple[Path, Path]) -> None:
    from medlabel.engines.deep.uncertainty import predict_with_uncertainty

    new, old, v = load(seg_dirs[0]), load(seg_dirs[1]), volume()
    auto_new = predict_with_uncertainty(new, v)
    assert auto_new.info["uncertainty_method"] == "mc-dropout" and auto_new.samples == 8
    auto_old = predict_with_uncertainty(old, v)
    assert auto_old.info["uncertainty_method"] == "tta" and auto_old.samples == 3
    assert auto_old.info["uncertainty_reason"] == "the network has no dropout"
    single = predict_with_uncertainty(old, v, tta=False)
    assert single.info["uncertainty_method"] == "none" and single.samples == 1
    assert float(single.disagreement.max()) == 0.0
    with pytest.raises(InvalidInputError, match="trained without"):
        predict_with_uncertainty(old, v, method="mc-dropout")


def test_onnx_backend_falls_back_to_tta_and_the_thumbnail(seg_dirs: tuple[Path, Path]) -> None:
    from medlabel.active.embedding import EmbeddingKind
    from medlabel.engines.deep.features import image_embedding
    from medlabel.engines.deep.model_dir import ONNX_FILE
    from medlabel.engines.deep.uncertainty import predict_with_uncertainty

    if not (seg_dirs[0] / ONNX_FILE).is_file():
        pytest.skip("onnx/onnxruntime are not installed")
    model, v = load(seg_dirs[0], backend="onnx"), volume()
    assert model.backend == "onnx" and model.torch_network is None
    pred = predict_with_uncertainty(model, v, method="mc-dropout")
    assert pred.info["uncertainty_method"] == "tta" and pred.samples == 3
    assert "ONNX" in pred.info["uncertainty_reason"]
    assert image_embedding(model, v)[1] == EmbeddingKind.THUMBNAIL


# classification --------------------------------------------------------------------------
def test_classification_mc_dropout(cls_dir: Path) -> None:
    import torch

    from medlabel.engines.deep.cls_uncertainty import class_uncertainty
    from medlabel.engines.deep.mc_dropout import dropout_layers, mc_dropout_mode

    model, v = load(cls_dir), volume(1)
    with mc_dropout_mode(model._net):
        bn = [m for m in model._net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert bn and not any(m.training for m in bn)
        assert all(m.training for m in dropout_layers(model._net))
    auto = class_uncertainty(model, v, samples=6, seed=1)
    assert auto.info["uncertainty_method"] == "mc-dropout" and auto.samples == 6
    assert auto.probabilities.shape == (2,) and np.isclose(auto.probabilities.sum(), 1.0)
    assert 0.0 <= auto.mutual_information <= auto.entropy <= 1.0
    again = class_uncertainty(model, v, samples=6, seed=1)
    other = class_uncertainty(model, v, samples=6, seed=2)
    assert np.array_equal(auto.probabilities, again.probabilities)
    assert not np.array_equal(auto.probabilities, other.probabilities)
    assert auto.mutual_information > 0  # the dropout samples differ
    tta = class_uncertainty(model, v, method="tta")
    assert tta.info["uncertainty_method"] == "tta" and tta.samples == 3
    assert class_uncertainty(model, v, method="tta+mc-dropout", samples=2).samples == 6
    assert not any(m.training for m in model._net.modules())
