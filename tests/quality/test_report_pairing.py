"""Pairing prediction, reference and ROI files by name for ``medlabel eval``."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.quality.report import pair_files, pairs_from_csv


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_missing_folder_names_the_side(tmp_path: Path) -> None:
    touch(tmp_path / "r", "a.png")
    with pytest.raises(NotFoundError, match="prediction folder"):
        pair_files(tmp_path / "nope", tmp_path / "r")
    touch(tmp_path / "p", "a.png")
    with pytest.raises(NotFoundError, match="ROI folder"):
        pair_files(tmp_path / "p", tmp_path / "r", tmp_path / "nope")


def test_empty_folder(tmp_path: Path) -> None:
    touch(tmp_path / "p", "notes.txt")
    touch(tmp_path / "r", "a.png")
    with pytest.raises(InvalidInputError, match="no PNG, JPEG, GIF, TIFF or NIfTI masks"):
        pair_files(tmp_path / "p", tmp_path / "r")


def test_stems_match_across_extensions_and_unmatched_are_listed(tmp_path: Path) -> None:
    touch(tmp_path / "p", "a.png", "b.nii.gz", "c.TIF", "only_pred.png", ".hidden.png", "x.txt")
    touch(tmp_path / "r", "a.gif", "b.nii", "c.png", "only_ref.jpg")
    p = pair_files(tmp_path / "p", tmp_path / "r")
    assert [(x.name, x.pred.name, x.ref.name, x.roi) for x in p.pairs] == [
        ("a", "a.png", "a.gif", None),
        ("b", "b.nii.gz", "b.nii", None),
        ("c", "c.TIF", "c.png", None),
    ]
    assert p.unmatched_pred == ("only_pred.png",)
    assert p.unmatched_ref == ("only_ref.jpg",)


def test_observer_suffixes(tmp_path: Path) -> None:
    """CHASE_DB1 naming: two observers' files differ only by their suffix."""
    touch(tmp_path / "o2", "Image_01L_2ndHO.png", "Image_01R_2ndHO.png", "stray.png")
    touch(tmp_path / "o1", "Image_01L_1stHO.png", "Image_01R_1stHO.png", "Image_02L_1stHO.png")
    with pytest.raises(InvalidInputError, match=r"--pred-suffix '_2ndHO'.*--ref-suffix '_1stHO'"):
        pair_files(tmp_path / "o2", tmp_path / "o1")
    p = pair_files(tmp_path / "o2", tmp_path / "o1", pred_suffix="_2ndHO", ref_suffix="_1stHO")
    assert [x.name for x in p.pairs] == ["Image_01L", "Image_01R"]
    assert p.unmatched_pred == ("stray.png",)  # lacks the suffix
    assert p.unmatched_ref == ("Image_02L_1stHO.png",)


def test_same_case_twice_in_a_folder(tmp_path: Path) -> None:
    touch(tmp_path / "p", "a.png", "a.nii.gz")
    touch(tmp_path / "r", "a.png")
    with pytest.raises(InvalidInputError, match="two files for case 'a'"):
        pair_files(tmp_path / "p", tmp_path / "r")


def test_roi_files_pair_too_and_cases_without_one_are_left_out(tmp_path: Path) -> None:
    touch(tmp_path / "p", "a.png", "b.png")
    touch(tmp_path / "r", "a.png", "b.png")
    touch(tmp_path / "fov", "a_mask.gif", "z_mask.gif")
    p = pair_files(tmp_path / "p", tmp_path / "r", tmp_path / "fov", roi_suffix="_mask")
    assert [(x.name, x.roi.name if x.roi else None) for x in p.pairs] == [("a", "a_mask.gif")]
    assert p.missing_roi == ("b",) and p.unmatched_roi == ("z_mask.gif",)
    touch(tmp_path / "other", "z.png")
    with pytest.raises(InvalidInputError, match="no case has a region-of-interest mask"):
        pair_files(tmp_path / "p", tmp_path / "r", tmp_path / "other")


def test_pairs_csv(tmp_path: Path) -> None:
    touch(tmp_path / "p", "model_case1.png")
    touch(tmp_path / "r", "case1_gt.nii.gz")
    touch(tmp_path, "fov1.png")
    csv = tmp_path / "pairs.csv"
    csv.write_text(
        "pred,ref,roi,name\n"
        "p/model_case1.png,r/case1_gt.nii.gz,fov1.png,\n"
        f"{tmp_path / 'p' / 'model_case1.png'},r/case1_gt.nii.gz,,second\n"
    )
    p = pairs_from_csv(csv)
    assert [(x.name, x.pred.name, x.ref.name, x.roi.name if x.roi else None) for x in p.pairs] == [
        ("case1_gt", "model_case1.png", "case1_gt.nii.gz", "fov1.png"),
        ("second", "model_case1.png", "case1_gt.nii.gz", None),
    ]


def test_pairs_csv_errors(tmp_path: Path) -> None:
    csv = tmp_path / "pairs.csv"
    with pytest.raises(NotFoundError, match="does not exist"):
        pairs_from_csv(csv)
    csv.write_text("prediction,reference\na.png,b.png\n")
    with pytest.raises(InvalidInputError, match="columns pred and ref"):
        pairs_from_csv(csv)
    csv.write_text("pred,ref\na.png,b.png\n")
    with pytest.raises(NotFoundError, match=r"line 2: pred file .*a.png does not exist"):
        pairs_from_csv(csv)
    touch(tmp_path, "a.png", "b.png")
    csv.write_text("pred,ref\na.png,b.png\nb.png,b.png\n")
    with pytest.raises(InvalidInputError, match="line 3: case 'b' is listed twice"):
        pairs_from_csv(csv)
    csv.write_text("pred,ref\n")
    with pytest.raises(InvalidInputError, match="lists no pairs"):
        pairs_from_csv(csv)
