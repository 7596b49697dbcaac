"""Tiny trained models for the active-learning signal tests (MC dropout, model features):
a 2D U-Net on coins crops and a small classification CNN on coins/brick crops, trained
for one epoch (seconds), and an "old" copy of the U-Net whose card predates dropout."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from PIL import Image

from medlabel.engines.deep.model_dir import CARD_FILE, ModelCard, TrainingConfig
from medlabel.engines.deep.tasks import FolderSource, LoggingReporter, get_task
from tests.engines.deep.conftest import coins_crops, write_png_pairs

SEG_CONFIG = {
    "seed": 1,
    "epochs": 1,
    "threads": 1,
    "onnx": False,
    "arch": "dynunet",
    "val_fraction": 0.34,
    "options": {"samples_per_epoch": 4, "base_filters": 4},
}
CLS_CONFIG = {
    "seed": 3,
    "epochs": 1,
    "threads": 1,
    "batch_size": 8,
    "onnx": False,
    "val_fraction": 0.34,
    "options": {"width": 4, "baseline": False},
}


def train_seg(root: Path, *, onnx: bool = False, **options: Any) -> Path:
    """A 2D DynUNet trained for one epoch on 6 coins crops; its model folder (with
    ``model.onnx`` when asked and onnx is installed)."""
    images, masks = write_png_pairs(root / "coins", coins_crops(6))
    task = get_task("seg")
    data = task.dataset_from_folder(FolderSource(images=images, masks=masks))
    config = {**SEG_CONFIG, "options": {**SEG_CONFIG["options"], **options}}
    trained = task.train(data, TrainingConfig(**config), LoggingReporter())
    out = root / "seg-model"
    trained.save(out, onnx=onnx)
    return out


def old_copy(directory: Path, root: Path) -> Path:
    """A copy of a segmentation model folder whose card has no dropout anywhere (as
    cards written before MC dropout); same weights."""
    card = json.loads((directory / CARD_FILE).read_text())
    card["architecture"]["params"].pop("dropout", None)
    card["plan"].pop("dropout", None)
    out = root / "old-model"
    out.mkdir()
    for f in directory.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    (out / CARD_FILE).write_text(json.dumps(card))
    return out


def train_cls(root: Path) -> Path:
    """A small classification CNN (coins vs brick crops), one epoch; its model folder."""
    from tests.engines.deep.test_classification import crops

    folder = root / "cls-train"
    folder.mkdir(parents=True)
    rows = [("image", "label")]
    for name, items in crops().items():
        for i, img in enumerate(items):
            Image.fromarray(img).save(folder / f"{name}_{i}.png")
            rows.append((f"{name}_{i}.png", name))
    table = root / "cls.csv"
    with open(table, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    task = get_task("cls")
    data = task.dataset_from_folder(FolderSource(images=folder, labels=table))
    trained = task.train(data, TrainingConfig(**CLS_CONFIG), LoggingReporter())
    out = root / "cls-model"
    trained.save(out)
    return out


def load(directory: Path, backend: str = "torch") -> Any:
    card = ModelCard.read(directory)
    return get_task(card.task).load(directory, card, backend=backend)
