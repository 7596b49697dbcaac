"""``medlabel eval`` end to end on real images, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medlabel.cli.main import app
from tests.quality.report_fixtures import (
    coins_folders,
    coins_masks,
    head_mask,
    save_png,
    shift_k,
    write_nifti,
)

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["eval", *args])
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, err: str, needle: str) -> None:
    assert code == 1, err
    assert "Traceback" not in err and needle in err, err
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, err


def test_writes_the_report_with_roi(tmp_path: Path) -> None:
    f = coins_folders(tmp_path / "data", n=3)
    out = tmp_path / "out"
    code, stdout, err = run(
        "--pred", str(f["pred"]), "--ref", str(f["ref"]), "--roi", str(f["roi"]),
        "--out", str(out), "--seed", "5", "--resamples", "300", "--label-names", "1=coin",
    )  # fmt: skip
    assert code == 0, err
    assert "3 case(s) evaluated, 0 skipped" in stdout and "label 1 coin (3 cases)" in stdout
    assert str(out / "report.html") in stdout
    assert {p.name for p in out.iterdir()} == {
        "report.json",
        "report.html",
        "cases.csv",
        "summary.csv",
    }
    data = json.loads((out / "report.json").read_text())
    assert data["config"]["seed"] == 5 and data["sources"]["roi"] == str(f["roi"])
    # accuracy inside the ROI, counted by hand on the same crops
    ref, pred, _ = coins_masks()
    for row in data["cases"]:
        i = int(row["case"].split("_")[1])
        window = (slice(10 * i, 10 * i + 200), slice(30 * i, 30 * i + 250))
        r, p = ref[window][:, :166], pred[window][:, :166]
        assert row["metrics"]["accuracy"] == pytest.approx(np.mean(r == p))
        assert row["metrics"]["tp"] == int(np.sum(r & p))
    assert "<svg" in (out / "report.html").read_text()


def test_observer_suffixes_and_unmatched_files(tmp_path: Path) -> None:
    ref, pred, _ = coins_masks()
    save_png(tmp_path / "o1" / "Image_01L_1stHO.png", ref)
    save_png(tmp_path / "o1" / "Image_02L_1stHO.png", ref)
    save_png(tmp_path / "o2" / "Image_01L_2ndHO.png", pred)
    args = ["--pred", str(tmp_path / "o2"), "--ref", str(tmp_path / "o1")]
    code, _, err = run(*args, "--out", str(tmp_path / "out"))
    assert_one_line_error(code, err, "--pred-suffix '_2ndHO' and --ref-suffix '_1stHO'")
    code, _, err = run(
        *args, "--pred-suffix", "_2ndHO", "--ref-suffix", "_1stHO", "--out", str(tmp_path / "out")
    )
    assert code == 0, err
    assert "warning: 1 reference(s) without a prediction: Image_02L_1stHO.png" in err
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["sources"]["unmatched_ref"] == ["Image_02L_1stHO.png"]
    assert [r["case"] for r in data["cases"]] == ["Image_01L"]


def test_nifti_distances_are_in_mm(tmp_path: Path) -> None:
    mask = head_mask()
    write_nifti(tmp_path / "ref" / "head.nii.gz", mask, (2.0, 2.0, 3.5))
    write_nifti(tmp_path / "pred" / "head.nii.gz", shift_k(mask), (2.0, 2.0, 3.5))
    code, _, err = run(
        "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
        "--out", str(tmp_path / "out"), "--spacing", "0.1",
    )  # fmt: skip
    assert code == 0, err
    row = json.loads((tmp_path / "out" / "report.json").read_text())["cases"][0]
    assert row["metrics"]["hd"] == pytest.approx(3.5) and row["spacing"] == [3.5, 2.0, 2.0]


def test_graded_predictions_get_a_roc(tmp_path: Path) -> None:
    ref, _, prob = coins_masks()
    save_png(tmp_path / "ref" / "c.png", ref)
    save_png(tmp_path / "pred" / "c.png", prob)
    code, stdout, err = run(
        "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
        "--out", str(tmp_path / "out"), "--threshold", "0.6",
    )  # fmt: skip
    assert code == 0, err
    assert "auc 0.9" in stdout
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["roc"]["cases"][0]["name"] == "c" and data["config"]["labels"] is None
    assert data["sources"]["loading"]["threshold"] == 0.6
    assert data["cases"][0]["metrics"]["tp"] == int(np.sum(ref & (prob > 0.6 * 255)))


def test_bad_cases_are_skipped_listed_and_fail_the_run(tmp_path: Path) -> None:
    f = coins_folders(tmp_path / "data", n=3, roi=False)
    save_png(f["pred"] / "coins_1.png", np.zeros((50, 60), bool))  # wrong size
    (f["pred"] / "coins_2.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")  # unreadable
    out = tmp_path / "out"
    args = ["--pred", str(f["pred"]), "--ref", str(f["ref"]), "--out", str(out)]
    code, stdout, err = run(*args)
    assert code == 1 and "Traceback" not in err
    assert (
        "skipped coins_1: sizes differ: prediction coins_1.png [1, 50, 60], reference "
        "coins_1.png [1, 200, 250]"
    ) in err
    assert "skipped coins_2.png: " in err
    assert "error: 2 of 3 case(s) could not be evaluated" in err and "--allow-skipped" in err
    assert "1 case(s) evaluated, 2 skipped" in stdout
    data = json.loads((out / "report.json").read_text())
    assert [s["name"] for s in data["skipped"]] == ["coins_1", "coins_2"]
    assert "Cases not evaluated" in (out / "report.html").read_text()
    code, _, err = run(*args, "--allow-skipped")
    assert code == 0, err


def test_every_case_failing_is_an_error(tmp_path: Path) -> None:
    save_png(tmp_path / "ref" / "a.png", np.ones((10, 10), bool))
    save_png(tmp_path / "pred" / "a.png", np.ones((12, 10), bool))
    code, _, err = run(
        "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: no case could be evaluated (a: a: sizes")
    assert not (tmp_path / "out" / "report.json").exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--labels", "1,x"], "--labels takes integers"),
        (["--labels", "0"], "distinct positive integers"),
        (["--spacing", "-1"], "--spacing takes 1 to 3 positive numbers"),
        (["--pred-kind", "probs"], "--pred-kind is auto, labels or scores"),
        (["--label-names", "liver"], "--label-names takes 1=liver"),
        (["--pairs", "x.csv"], "give either --pairs or --pred/--ref/--roi"),
    ],
)
def test_bad_options(tmp_path: Path, extra: list[str], needle: str) -> None:
    f = coins_folders(tmp_path / "data", n=1, roi=False)
    code, _, err = run(
        "--pred", str(f["pred"]), "--ref", str(f["ref"]), "--out", str(tmp_path / "o"), *extra
    )
    assert_one_line_error(code, err, needle)


def test_missing_inputs(tmp_path: Path) -> None:
    code, _, err = run("--pred", str(tmp_path / "none"), "--ref", str(tmp_path), "--out", "o")
    assert_one_line_error(code, err, "prediction folder")
    code, _, err = run("--ref", str(tmp_path), "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, "give --pred and --ref folders")
    code, _, err = run("--pairs", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, "pairs file")
    f = coins_folders(tmp_path / "data", n=1, roi=False)
    (tmp_path / "taken").write_text("")
    code, _, err = run(
        "--pred", str(f["pred"]), "--ref", str(f["ref"]), "--out", str(tmp_path / "taken")
    )
    assert_one_line_error(code, err, "is a file")


def test_pairs_csv(tmp_path: Path) -> None:
    ref, pred, _ = coins_masks()
    save_png(tmp_path / "a_model.png", pred)
    Image.fromarray((ref * 255).astype(np.uint8)).save(tmp_path / "a_truth.gif")
    (tmp_path / "pairs.csv").write_text("name,pred,ref\ncase_a,a_model.png,a_truth.gif\n")
    code, _, err = run("--pairs", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "o"))
    assert code == 0, err
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    assert data["cases"][0]["case"] == "case_a"
    assert data["sources"]["pred"].startswith("predictions listed in")
