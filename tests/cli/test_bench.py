"""``medlabel bench interactive`` end to end, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from medlabel.cli.main import app
from tests.quality.phantoms import write_pair

runner = CliRunner()


def bench(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["bench", "interactive", *args])
    return result.exit_code, result.stdout, result.stderr


def dataset(root: Path, n: int = 2) -> tuple[str, str]:
    for i in range(n):
        write_pair(root / "img", root / "gt", f"img_{i}", seed=i, mask_ext="_gt.png")
    return str(root / "img"), str(root / "gt")


def assert_one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err and needle in err
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, err


def test_writes_the_report(tmp_path: Path) -> None:
    images, masks = dataset(tmp_path)
    out = tmp_path / "res" / "walker.json"
    code, stdout, err = bench(
        "--images", images, "--masks", masks, "--mask-suffix", "_gt",
        "--engine", "random-walker", "--max-clicks", "2", "--jitter", "0.05",
        "--seed", "3", "--param", "beta=90", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out.read_text())
    s = report["summary"]
    assert s["cases"] == 2 and len(s["mean_dice_per_prompt"]) == 3
    assert s["options"]["params"] == {"beta": "90"} and s["options"]["seed"] == 3
    assert s["dataset"] == {"images": images, "masks": masks}
    assert [c["name"] for c in report["cases"]] == ["img_0", "img_1"]
    assert "NoC@90" in stdout and str(out) in stdout


def test_missing_folder(tmp_path: Path) -> None:
    code, _, err = bench(
        "--images", str(tmp_path / "none"), "--masks", str(tmp_path),
        "--engine", "threshold", "--out", str(tmp_path / "o.json"),
    )  # fmt: skip
    assert_one_line_error(code, err, "does not exist")


def test_no_pairs_suggests_the_suffix(tmp_path: Path) -> None:
    images, masks = dataset(tmp_path, n=1)
    code, _, err = bench(
        "--images", images, "--masks", masks, "--engine", "threshold",
        "--out", str(tmp_path / "o.json"),
    )  # fmt: skip
    assert_one_line_error(code, err, "--mask-suffix _gt")
    assert not (tmp_path / "o.json").exists()


def test_unknown_engine(tmp_path: Path) -> None:
    images, masks = dataset(tmp_path, n=1)
    code, _, err = bench(
        "--images", images, "--masks", masks, "--mask-suffix", "_gt",
        "--engine", "magic-wand", "--out", str(tmp_path / "o.json"),
    )  # fmt: skip
    assert_one_line_error(code, err, "no engine named 'magic-wand'")


def test_unreadable_mask(tmp_path: Path) -> None:
    images, masks = dataset(tmp_path, n=1)
    (Path(masks) / "img_0_gt.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    code, _, err = bench(
        "--images", images, "--masks", masks, "--mask-suffix", "_gt",
        "--engine", "region-grow", "--out", str(tmp_path / "o.json"),
    )  # fmt: skip
    assert_one_line_error(code, err, "img_0_gt.png")


def test_mask_of_another_size(tmp_path: Path) -> None:
    images, masks = dataset(tmp_path, n=1)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(Path(masks) / "img_0_gt.png")
    code, _, err = bench(
        "--images", images, "--masks", masks, "--mask-suffix", "_gt",
        "--engine", "region-grow", "--out", str(tmp_path / "o.json"),
    )  # fmt: skip
    assert_one_line_error(code, err, "differs from the image's")


def test_bad_options(tmp_path: Path) -> None:
    images, masks = dataset(tmp_path, n=1)
    common = ["--images", images, "--masks", masks, "--mask-suffix", "_gt"]
    out = ["--out", str(tmp_path / "o.json")]
    code, _, err = bench(*common, "--engine", "region-grow", "--labels", "1,x", *out)
    assert_one_line_error(code, err, "--labels takes integers")
    code, _, err = bench(*common, "--engine", "region-grow", "--param", "tolerance", *out)
    assert_one_line_error(code, err, "NAME=VALUE")
    code, _, err = bench(*common, "--engine", "region-grow", "--first-prompt", "lasso", *out)
    assert_one_line_error(code, err, "first prompt must be one of")
    code, _, err = bench(*common, "--engine", "region-grow", "--param", "nope=1", *out)
    assert_one_line_error(code, err, "has no parameter 'nope'")
