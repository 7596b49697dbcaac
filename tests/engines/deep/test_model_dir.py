"""The model directory format: the card's validation, tolerant reading, atomic writing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.engines.deep.model_dir import (
    CARD_FILE,
    FORMAT_VERSION,
    ONNX_FILE,
    WEIGHTS_FILE,
    Architecture,
    InputSpec,
    LabelInfo,
    ModelCard,
    Normalisation,
    NormScheme,
    load_model,
    load_state,
    prepare_directory,
    save_model,
)


def card(**changes: object) -> ModelCard:
    base = ModelCard(
        task="seg",
        architecture=Architecture(name="dynunet", params={"spatial_dims": 2}),
        input=InputSpec(
            dims=2,
            channels=1,
            patch_size=[32, 32],
            normalisation=Normalisation(scheme="zscore"),
        ),
        labels=[LabelInfo(value=0, name="background"), LabelInfo(value=1, name="coin")],
    )
    return base.model_copy(update=changes)


def test_patch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="patch_size"):
        InputSpec(dims=2, channels=1, patch_size=[0, 4], normalisation={"scheme": "none"})


def test_missing_directory_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="medlabel train"):
        ModelCard.read(tmp_path)
    with pytest.raises(NotFoundError):
        load_model(tmp_path / "nowhere")


def test_invalid_card_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / CARD_FILE).write_text('{"task": "seg"}')
    with pytest.raises(InvalidInputError, match="not a valid model card"):
        ModelCard.read(tmp_path)


def test_newer_format_is_refused(tmp_path: Path) -> None:
    payload = json.loads(card().model_dump_json())
    payload["format_version"] = FORMAT_VERSION + 1
    (tmp_path / CARD_FILE).write_text(json.dumps(payload))
    with pytest.raises(InvalidInputError, match="upgrade medlabel"):
        ModelCard.read(tmp_path)


def test_unknown_fields_are_ignored_when_reading(tmp_path: Path) -> None:
    payload = json.loads(card().model_dump_json())
    payload["added_by_a_later_version"] = {"x": 1}
    payload["input"]["also_new"] = 3
    (tmp_path / CARD_FILE).write_text(json.dumps(payload))
    read = ModelCard.read(tmp_path)
    assert read.labels[1].name == "coin" and read.input.patch_size == [32, 32]


def test_prepare_directory_refuses_foreign_folders(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not empty and not a model directory"):
        prepare_directory(tmp_path)
    with pytest.raises(InvalidInputError, match="is a file"):
        prepare_directory(tmp_path / "notes.txt")


def test_save_then_load_state_round_trip(tmp_path: Path, train_extra: None) -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 2, 3)
    first = save_model(tmp_path / "m", card(), net)  # a new model directory
    (tmp_path / "m" / ONNX_FILE).write_bytes(b"stale")
    again = save_model(tmp_path / "m", first, net)  # replacing an existing model
    assert again.parameters == 2 * 1 * 3 * 3 + 2
    assert again.weights_bytes == (tmp_path / "m" / WEIGHTS_FILE).stat().st_size > 0
    assert again.versions["medlabel"] and again.versions["torch"]
    assert not (tmp_path / "m" / ONNX_FILE).exists()
    state = load_state(tmp_path / "m")
    assert torch.equal(state["weight"], net.weight.detach())
    assert ModelCard.read(tmp_path / "m") == again


def test_normalisation_schemes() -> None:
    x = np.array([[[0.0, 10.0, 20.0, 1000.0]]], np.float32)
    ct = Normalisation(scheme=NormScheme.CT, clip=(0.0, 20.0), mean=[10.0], std=[5.0])
    assert ct.apply(x).tolist() == [[[-2.0, 0.0, 2.0, 2.0]]]
    z = Normalisation(scheme=NormScheme.ZSCORE).apply(x)
    assert abs(float(z.mean())) < 1e-6 and abs(float(z.std()) - 1) < 1e-5
    assert Normalisation(scheme=NormScheme.NONE).apply(x).tolist() == x.tolist()
