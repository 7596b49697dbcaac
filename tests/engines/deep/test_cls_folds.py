"""Cross-validated ensembles of the classification CNN (``--option folds=K``): the folds,
training end to end through the CLI (out-of-fold validation, one network per fold, their
averaged probabilities), ONNX, saliency, features, MC dropout, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep.cls_folds import check_folds, stratified_folds
from medlabel.engines.deep.cls_models import ResNetEnsemble, SmallResNet, build_resnet
from medlabel.engines.deep.model_dir import ModelCard, load_model
from medlabel.engines.deep.tasks import Example
from tests.engines.deep.test_classification import SMALL, assert_one_line_error, run, train


def test_folds_are_stratified_disjoint_and_cover_everything() -> None:
    targets = [0] * 7 + [1] * 5 + [2] * 3
    folds = stratified_folds(targets, 3, seed=4)
    flat = sorted(i for f in folds for i in f)
    assert flat == list(range(len(targets)))
    assert sorted(len(f) for f in folds) == [5, 5, 5]
    for f in folds:  # every class in every fold, in proportion
        counts = [sum(targets[i] == c for i in f) for c in range(3)]
        assert counts[2] == 1 and counts[0] in (2, 3) and counts[1] in (1, 2)
    assert stratified_folds(targets, 3, seed=4) == folds
    assert stratified_folds(targets, 3, seed=5) != folds


def test_fold_count_is_checked() -> None:
    examples = [Example(f"e{i}", None, i % 2) for i in range(7)]  # type: ignore[arg-type]
    assert check_folds(examples, 3) == 3
    for bad in ("many", "3", True, 0, 11):
        with pytest.raises(InvalidInputError, match=r"whole number from 1 .* to 10"):
            check_folds(examples, bad)
    with pytest.raises(InvalidInputError, match="an ensemble needs 2 to 10 folds"):
        check_folds(examples, 1)
    with pytest.raises(InvalidInputError, match="class 1: 3"):
        check_folds(examples, 4)


def test_ensemble_averages_its_members_probabilities() -> None:
    torch.manual_seed(0)
    params = {"in_channels": 1, "n_classes": 3, "width": 4}
    net = build_resnet({**params, "members": 3})
    assert isinstance(net, ResNetEnsemble) and len(net.members) == 3
    assert isinstance(build_resnet(params), SmallResNet)
    net.eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.inference_mode():
        want = torch.stack([torch.softmax(m(x), 1) for m in net.members]).mean(0)
        got = torch.softmax(net(x), 1)
    assert torch.allclose(got, want, atol=1e-6)
    with pytest.raises(ValueError, match="at least two"):
        ResNetEnsemble([SmallResNet(**params)])  # type: ignore[arg-type]


def test_cli_trains_a_fold_ensemble(tmp_path: Path, labelled: tuple[Path, Path]) -> None:
    images, table = labelled
    out = tmp_path / "model"
    stdout = train(images, table, out, "--epochs", "2", "--option", "folds=3", *SMALL)
    assert "cls model (cls-resnet" in stdout
    card = ModelCard.read(out)
    assert card.architecture.params["members"] == 3
    folds = card.plan["folds"]
    assert [f["fold"] for f in folds] == [1, 2, 3] and sum(f["val"] for f in folds) == 12
    assert sorted(n for f in folds for n in f["val_names"]) == sorted(
        d.name for d in card.data.train
    )
    assert len(card.data.train) == 12 and card.data.val == []
    assert {r.fold for r in card.history} == {1, 2, 3} and card.epochs_run == 6
    assert {"accuracy", "auc"} <= set(card.validation) and "baseline_hog_svm_auc" in card.validation

    torch_model = load_model(out, backend="torch")
    onnx_model = load_model(out, backend="onnx")
    img = np.asarray(Image.open(images / "coins_2.png"))
    p_torch = torch_model.probabilities(img)  # type: ignore[attr-defined]
    p_onnx = onnx_model.probabilities(img)  # type: ignore[attr-defined]
    assert p_torch.shape == (2,) and abs(float(p_torch.sum()) - 1) < 1e-5
    assert np.allclose(p_torch, p_onnx, atol=1e-4)
    members = torch_model._net.members  # type: ignore[attr-defined]
    x = torch.from_numpy(torch_model._inputs(img)[0][None])  # type: ignore[attr-defined]
    with torch.inference_mode():
        mean = torch.stack([torch.softmax(m(x), 1) for m in members]).mean(0)[0].numpy()
    assert np.allclose(p_torch, mean, atol=1e-5)

    heat = torch_model.explain(img)  # type: ignore[attr-defined]
    assert heat.shape == img.shape and heat.min() >= 0.0 and heat.max() <= 1.0

    from medlabel.engines.deep.cls_uncertainty import class_uncertainty
    from medlabel.engines.deep.features import model_features

    mc = class_uncertainty(torch_model, img, method="mc-dropout", samples=4)
    assert mc.samples == 4 and mc.info["uncertainty_method"] == "mc-dropout"
    vec = model_features(torch_model, img)  # each member's pooled last stage, concatenated
    assert vec is not None and vec.shape == (sum(m.fc.in_features for m in members),)
    assert np.isclose(np.linalg.norm(vec), 1.0, atol=1e-4)


def test_cli_rejects_bad_folds(tmp_path: Path, labelled: tuple[Path, Path]) -> None:
    images, table = labelled
    base = ["train", "--task", "cls", "--images", str(images), "--labels", str(table)]
    code, _, err = run(*base, "--out", str(tmp_path / "a"), "--option", "folds=7", *SMALL)
    assert_one_line_error(code, err, "7 folds need at least 7 images of every class")
    code, _, err = run(
        *base, "--out", str(tmp_path / "b"), "--arch", "hog-svm", "--option", "folds=3"
    )
    assert_one_line_error(code, err, "need arch cnn")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
