"""The command line, driven with Typer's CliRunner on real files."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import pytest
from typer.testing import CliRunner

from medlabel.cli.main import app
from tests.conftest import sample_file

runner = CliRunner()


def run(home: Path, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--home", str(home)], input=input)
    return result.exit_code, result.stdout, result.stderr


def test_users_projects_labels(tmp_path: Path) -> None:
    home = tmp_path / "h"
    code, out, _ = run(
        home,
        "users",
        "create",
        "ann",
        "--role",
        "annotator",
        "--password-stdin",
        input="correct horse battery\n",
    )
    assert code == 0 and "created user 'ann'" in out
    code, _, err = run(
        home, "users", "create", "ann", "--password-stdin", input="correct horse b\n"
    )
    assert code == 1 and "already exists" in err and "Traceback" not in err
    code, _, err = run(home, "users", "create", "bob", "--password-stdin", input="short\n")
    assert code == 1 and "at least 8" in err
    assert run(home, "projects", "create", "Liver")[0] == 0
    code, out, _ = run(
        home,
        "labels",
        "add",
        "liver",
        "--project",
        "Liver",
        "--kind",
        "mask",
        "--code",
        "10200004:SCT:Liver",
    )
    assert code == 0 and "value 1" in out
    code, _, err = run(home, "labels", "add", "x", "--project", "Liver", "--code", "nonsense")
    assert code == 1 and "VALUE:SCHEME:MEANING" in err
    code, out, _ = run(home, "members", "add", "ann", "--project", "Liver")
    assert code == 0 and "annotator" in out
    code, _, err = run(home, "labels", "list", "--project", "Nope")
    assert code == 1 and "no project named 'Nope'" in err


def test_import_export_round_trip(tmp_path: Path, ct_series: Path, nifti_file: Path) -> None:
    home = tmp_path / "h"
    code, out, err = run(
        home, "import", str(ct_series), str(nifti_file), "--project", "Study", "--modality", "MR"
    )
    assert code == 0, err
    assert "2 image(s) from 6 file(s)" in out and "5 DICOM instance(s)" in out
    assert "created project 'Study'" in err
    code, out, _ = run(home, "projects", "list")
    assert "Study" in out and "unlabelled 2" in out
    # nothing annotated yet: export says so
    code, _, err = run(
        home, "export", "--project", "Study", "--format", "nifti", "--out", str(tmp_path / "e")
    )
    assert code == 1 and "no annotations" in err
    # import a mask for the MRI by file name, as a member user, then export it
    run(
        home,
        "users",
        "create",
        "ann",
        "--role",
        "annotator",
        "--password-stdin",
        input="correct horse battery\n",
    )
    run(home, "labels", "add", "brain", "--project", "Study")
    img = nib.load(nifti_file)
    mask = (img.get_fdata() > img.get_fdata().mean()).astype("uint8")
    mask_file = tmp_path / "anatomical_mask.nii.gz"
    nib.save(nib.Nifti1Image(mask, img.affine), mask_file)
    code, _, err = run(
        home, "annotations", "import", str(mask_file), "--project", "Study", "--user", "ann"
    )
    assert code == 1 and "not a member" in err
    run(home, "members", "add", "ann", "--project", "Study")
    code, out, err = run(
        home, "annotations", "import", str(mask_file), "--project", "Study", "--user", "ann"
    )
    assert code == 0, err
    assert "image 'anatomical'" in out
    out_dir = tmp_path / "export"
    code, out, err = run(
        home, "export", "--project", "Study", "--format", "nifti", "--out", str(out_dir)
    )
    assert code == 0, err
    back = nib.load(out_dir / "labels" / "anatomical.nii.gz")
    assert (back.get_fdata() == mask).all()
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["items"][0]["author"] == "ann" and manifest["items"][0]["source"] == "import"


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda tmp: sample_file("MR_truncated.dcm"), "MR_truncated.dcm"),
        (lambda tmp: tmp / "missing.dcm", "no such file"),
    ],
)
def test_import_failure_is_one_line_and_exit_1(tmp_path: Path, make: object, fragment: str) -> None:
    code, _, err = run(tmp_path / "h", "import", str(make(tmp_path)), "--project", "P")  # type: ignore[operator]
    assert code == 1
    (line,) = err.strip().splitlines()  # one line, no traceback
    assert line.startswith("error:") and fragment in line
    assert "P" not in run(tmp_path / "h", "projects", "list")[1]  # no empty project left


def test_skip_invalid_reports_and_continues(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all")
    code, out, err = run(
        tmp_path / "h",
        "import",
        str(sample_file("CT_small.dcm")),
        str(bad),
        "--project",
        "P",
        "--skip-invalid",
    )
    assert code == 0 and "1 image(s)" in out and "1 rejected" in out
    assert "bad.dcm" in err


def test_demo_sets_up_real_images(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    code, out, err = run(home, "demo", "--no-serve")
    assert code == 0, err
    assert "login:    demo" in out and "http://127.0.0.1:8000/" in out
    password = (home / "demo-login.txt").read_text().strip()
    assert password in out and len(password) >= 10
    assert "9 images" in out
    # idempotent: a second run keeps the same login and data
    code, out2, _ = run(home, "demo", "--no-serve")
    assert code == 0 and password in out2 and "9 images" in out2


def test_version_and_help(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "medlabel" in result.stdout
    result = runner.invoke(app, ["--help"])
    for command in ("demo", "serve", "import", "export", "users", "projects", "annotations"):
        assert command in result.stdout
