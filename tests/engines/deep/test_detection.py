"""Detection: box tables (Kvasir JSON with original sizes, CSV), ``medlabel train --task
det`` / ``medlabel predict`` end to end on tiny real images (crops of scikit-image's
coins photograph, each coin boxed from an Otsu segmentation), decoding and NMS,
determinism and one-line errors for bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage import data, filters, measure, morphology, transform
from typer.testing import CliRunner

from medlabel.cli.main import app
from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep.model_dir import WEIGHTS_FILE, ModelCard, load_model

runner = CliRunner()
SMALL = ["--option", "width=4", "--threads", "1", "--batch-size", "3", "--no-onnx"]


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err and needle in err, err
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, err


def coin_crops(n: int = 6) -> list[tuple[np.ndarray, list[list[int]]]]:
    """``n`` 64×96 crops of the coins photograph (halved) with the boxes of the coins
    inside them (``[x0, y0, x1, y1]`` in crop pixels)."""
    img = transform.rescale(data.coins(), 0.5, anti_aliasing=True, preserve_range=True)
    img = img.astype(np.uint8)
    mask = morphology.opening(img > filters.threshold_otsu(img), morphology.disk(2))
    labels = measure.label(ndimage.binary_fill_holes(mask))
    out = []
    for i in range(n):
        r, c = (13 * i) % (img.shape[0] - 64), (17 * i) % (img.shape[1] - 96)
        boxes = []
        for p in measure.regionprops(labels[r : r + 64, c : c + 96]):
            if p.area >= 60:
                r0, c0, r1, c1 = p.bbox
                boxes.append([c0, r0, c1, r1])
        out.append((np.ascontiguousarray(img[r : r + 64, c : c + 96]), boxes))
    return out


@pytest.fixture
def boxed(tmp_path: Path) -> tuple[Path, Path]:
    """Images and a Kvasir-style JSON whose boxes refer to images twice as large."""
    images = tmp_path / "images"
    images.mkdir()
    records = {}
    for i, (img, boxes) in enumerate(coin_crops()):
        Image.fromarray(img).save(images / f"crop{i}.png")
        records[f"crop{i}"] = {
            "height": 128,
            "width": 192,
            "bbox": [
                {"label": "coin", "xmin": 2 * a, "ymin": 2 * b, "xmax": 2 * c, "ymax": 2 * d}
                for a, b, c, d in boxes
            ],
        }
    table = tmp_path / "boxes.json"
    table.write_text(json.dumps(records))
    return images, table


# edge cases first -----------------------------------------------------------------------
def test_boxes_are_scaled_to_the_image(boxed: tuple[Path, Path]) -> None:
    from medlabel.engines.deep.det_data import detection_set
    from medlabel.engines.deep.tasks import FolderSource

    images, table = boxed
    ds = detection_set(FolderSource(images=images, labels=table))
    first = json.loads(table.read_text())["crop0"]["bbox"][0]
    got = ds.examples[0].target.boxes[0].tolist()
    assert got == [first["xmin"] / 2, first["ymin"] / 2, first["xmax"] / 2, first["ymax"] / 2]
    assert ds.labels == {0: "coin"}


def test_csv_boxes(tmp_path: Path, boxed: tuple[Path, Path]) -> None:
    from medlabel.engines.deep.det_data import detection_set
    from medlabel.engines.deep.tasks import FolderSource

    table = tmp_path / "boxes.csv"
    with open(table, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label", "xmin", "ymin", "xmax", "ymax"])
        w.writerow(["crop0.png", "coin", 1, 2, 11, 12])
        w.writerow(["crop0.png", "ring", 20, 20, 30, 30])
        w.writerow(["crop1", "coin", 5, 5, 9, 9])
    ds = detection_set(FolderSource(images=boxed[0], labels=table))
    assert ds.labels == {0: "coin", 1: "ring"} and len(ds.examples) == 2
    assert ds.examples[0].target.classes.tolist() == [0, 1]


def test_unknown_images_and_bad_boxes(tmp_path: Path, boxed: tuple[Path, Path]) -> None:
    images, table = boxed
    records = json.loads(table.read_text())
    records["ghost"] = {"height": 10, "width": 10, "bbox": []}
    table.write_text(json.dumps(records))
    code, _, err = run(
        "train", "--task", "det", "--images", str(images), "--labels", str(table),
        "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert_one_line_error(code, err, "'ghost'")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"crop0": {"bbox": [{"xmin": 5, "ymin": 0, "xmax": 1, "ymax": 3}]}}))
    code, _, err = run(
        "train", "--task", "det", "--images", str(images), "--labels", str(bad),
        "--out", str(tmp_path / "m"),
    )  # fmt: skip
    assert_one_line_error(code, err, "xmax < xmin")


def test_decode_suppresses_overlaps() -> None:
    from medlabel.engines.deep.detection import decode

    out = np.full((5, 8, 8), -10.0, np.float32)
    out[0, 2, 2], out[0, 2, 4], out[0, 6, 6] = 3.0, 2.0, 1.0
    out[1:3] = np.log(8.0)  # 8 cells wide and high: the first two overlap
    out[3:5] = 0.0
    boxes, scores, classes = decode(out, 1, min_score=0.5, nms_iou=0.3)
    assert len(boxes) == 2 and scores[0] > scores[1] and classes.tolist() == [0, 0]
    np.testing.assert_allclose(boxes[0], [-8.0, -8.0, 24.0, 24.0])


def test_needs_a_table(tmp_path: Path, boxed: tuple[Path, Path], train_extra: None) -> None:
    code, _, err = run(
        "train", "--task", "det", "--images", str(boxed[0]), "--out", str(tmp_path / "m")
    )
    assert_one_line_error(code, err, "--labels")


def test_registered_as_a_task_trainer(train_extra: None) -> None:
    from medlabel.engines.deep.tasks import TaskTrainer, get_task, task_available

    trainer = get_task("det")
    assert task_available("det") and isinstance(trainer, TaskTrainer)
    assert trainer.task.value == "det"


# end to end -----------------------------------------------------------------------------
def test_train_and_predict(tmp_path: Path, boxed: tuple[Path, Path], train_extra: None) -> None:
    images, table = boxed
    out = tmp_path / "model"
    code, stdout, err = run(
        "train", "--task", "det", "--images", str(images), "--labels", str(table),
        "--out", str(out), "--epochs", "2", "--seed", "5", "--val-fraction", "0.34", *SMALL,
    )  # fmt: skip
    assert code == 0, err
    assert "det model (det-centernet" in stdout
    card = ModelCard.read(out)
    assert card.epochs_run == 2 and "ap50" in card.history[-1].metrics
    assert card.input.patch_size == [80, 128] and card.plan["seed"] == 5

    code, _, err = run("predict", "--model", str(out), "--images", str(images), "--out",
                       str(tmp_path / "p"))  # fmt: skip
    assert code == 0, err
    payload = json.loads((tmp_path / "p" / "boxes.json").read_text())
    assert payload["classes"] == ["coin"] and len(payload["images"]) == 6
    for boxes in payload["images"].values():
        for b in boxes:
            assert 0 <= b["xmin"] <= b["xmax"] <= 96 and 0 <= b["ymin"] <= b["ymax"] <= 64
            assert 0.0 <= b["score"] <= 1.0 and b["label"] == "coin"
    with open(tmp_path / "p" / "boxes.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == sum(len(v) for v in payload["images"].values())

    model = load_model(out)
    img = np.asarray(Image.open(images / "crop0.png"))
    assert isinstance(model.predict(img), list)
    with pytest.raises(InvalidInputError, match="2D image"):
        model.predict(np.zeros((2, 3, 4, 5)))


def test_same_seed_same_model(tmp_path: Path, boxed: tuple[Path, Path], train_extra: None) -> None:
    import torch

    images, table = boxed
    for name in ("a", "b"):
        code, _, err = run(
            "train", "--task", "det", "--images", str(images), "--labels", str(table),
            "--out", str(tmp_path / name), "--epochs", "1", "--seed", "2", *SMALL,
        )  # fmt: skip
        assert code == 0, err
    a = torch.load(tmp_path / "a" / WEIGHTS_FILE, weights_only=True)
    b = torch.load(tmp_path / "b" / WEIGHTS_FILE, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
