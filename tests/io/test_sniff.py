"""Tests of medlabel.io.sniff on pydicom's and nibabel's test files and generated images."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import zipfile
from pathlib import Path

import nibabel.testing
import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.data import get_testdata_file

from medlabel.core.errors import InvalidInputError
from medlabel.io.sniff import FileKind, is_junk, iter_files, sniff

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
NIBABEL_FILES = Path(nibabel.testing.data_path)


def _copy(src: Path, dest: Path) -> Path:
    shutil.copyfile(src, dest)
    return dest


def _image(fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 4), 9).save(buf, fmt, **kwargs)
    return buf.getvalue()


# edge cases -----------------------------------------------------------------------------
def test_missing_file_and_folder_are_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"gone\.dcm"):
        sniff(tmp_path / "gone.dcm")
    with pytest.raises(InvalidInputError, match="cannot read"):
        sniff(tmp_path)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("empty", FileKind.UNKNOWN),
        ("empty.txt", FileKind.UNKNOWN),
        ("empty.dcm", FileKind.DICOM),
        ("EMPTY.PNG", FileKind.PNG),
        ("empty.jpeg", FileKind.JPEG),
        ("empty.tif", FileKind.TIFF),
        ("empty.nii", FileKind.NIFTI),
        ("empty.nii.gz", FileKind.NIFTI),
        ("empty.zip", FileKind.ZIP),
        ("empty.gz", FileKind.UNKNOWN),
    ],
)
def test_extension_decides_when_content_matches_nothing(
    tmp_path: Path, name: str, kind: FileKind
) -> None:
    # The reader of the claimed format then explains what is wrong with the file.
    path = tmp_path / name
    path.write_bytes(b"")
    assert sniff(path) is kind


@pytest.mark.parametrize(
    "data",
    [b"\x08\x00", b"\x08\x00\x05\x00", b"\x1f\x8b", b"\x1f\x8b\x08\x00garbage", b"II*"],
)
def test_short_or_broken_heads_are_unknown(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sniff(path) is FileKind.UNKNOWN


@pytest.mark.parametrize(
    "name", ["README.txt", "crayons.icc", "test1.json", "rtplan.dump", "zipMR.gz"]
)
def test_other_formats_from_pydicom_are_unknown(tmp_path: Path, name: str) -> None:
    # Copied without extension so that only the content is judged.
    assert sniff(_copy(PYDICOM_FILES / name, tmp_path / "file")) is FileKind.UNKNOWN


# DICOM ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        Path(get_testdata_file("CT_small.dcm")),  # preamble that looks like a TIFF header
        Path(get_testdata_file("MR_small_bigendian.dcm")),
        NIBABEL_FILES / "0.dcm",  # preamble that starts like a NIfTI header (348)
        PYDICOM_FILES / "dicomdirtests" / "98892003" / "MR700" / "4648",  # no extension
    ],
    ids=lambda p: p.name,
)
def test_dicom_with_preamble(path: Path) -> None:
    assert sniff(path) is FileKind.DICOM


@pytest.mark.parametrize(
    "name", ["rtstruct.dcm", "ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm"]
)
def test_dicom_without_preamble_by_heuristic(tmp_path: Path, name: str) -> None:
    # PACS exports often name files by UID: the "extension" is a number.
    path = _copy(PYDICOM_FILES / name, tmp_path / "1.2.840.113619.2.55.3.1")
    assert sniff(path) is FileKind.DICOM


def test_raw_dicom_heuristic_needs_a_plausible_first_element(tmp_path: Path) -> None:
    data = (PYDICOM_FILES / "rtstruct.dcm").read_bytes()
    path = tmp_path / "IM1"
    path.write_bytes(b"\x10\x00" + data[2:])  # group 0x0010 instead of 0x0008
    assert sniff(path) is FileKind.UNKNOWN
    path.write_bytes(data[:4] + b"\x0b\x00\x00\x00" + data[8:])  # odd value length
    assert sniff(path) is FileKind.UNKNOWN


@pytest.mark.parametrize(
    "name", ["DICOMDIR", "DICOMDIR-implicit", "DICOMDIR-bigEnd", "DICOMDIR-empty.dcm"]
)
def test_dicomdir_by_sop_class(tmp_path: Path, name: str) -> None:
    path = _copy(PYDICOM_FILES / "dicomdirtests" / name, tmp_path / "index")
    assert sniff(path) is FileKind.DICOMDIR


def test_dicomdir_by_name(tmp_path: Path) -> None:
    dicomdir = tmp_path / "DICOMDIR"
    dicomdir.write_bytes(b"")
    assert sniff(dicomdir) is FileKind.DICOMDIR
    # The name rule ignores case (media copied to case-insensitive file systems).
    lower = _copy(Path(get_testdata_file("CT_small.dcm")), tmp_path / "dicomdir")
    assert sniff(lower) is FileKind.DICOMDIR


# NIfTI ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "anatomical.nii",  # NIfTI-1 n+1, big-endian
        "nifti1.hdr",  # NIfTI-1 ni1 (header of a .hdr/.img pair)
        "nifti2.hdr",  # NIfTI-2 ni2
        "standard.nii.gz",  # gzipped NIfTI-1
        "example_nifti2.nii.gz",  # gzipped NIfTI-2
    ],
)
def test_nifti_by_magic(tmp_path: Path, name: str) -> None:
    assert sniff(NIBABEL_FILES / name) is FileKind.NIFTI
    assert sniff(_copy(NIBABEL_FILES / name, tmp_path / "volume")) is FileKind.NIFTI


@pytest.mark.parametrize("name", ["analyze.hdr", "test.mgz", "tinypet.v"])
def test_other_neuro_formats_are_unknown(name: str) -> None:
    assert sniff(NIBABEL_FILES / name) is FileKind.UNKNOWN


def test_nifti_in_gzip_with_a_long_file_name(tmp_path: Path) -> None:
    raw = (NIBABEL_FILES / "anatomical.nii").read_bytes()
    path = tmp_path / "scan"
    with gzip.GzipFile(filename="x" * 5000 + ".nii", mode="wb", fileobj=path.open("wb")) as gz:
        gz.write(raw)
    assert sniff(path) is FileKind.NIFTI


# images and archives ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (_image("PNG"), FileKind.PNG),
        (_image("JPEG"), FileKind.JPEG),
        (_image("TIFF"), FileKind.TIFF),
    ],
)
def test_images_by_magic_whatever_their_name(tmp_path: Path, data: bytes, kind: FileKind) -> None:
    path = tmp_path / "photo.dcm"  # a lying extension loses against the content
    path.write_bytes(data)
    assert sniff(path) is kind


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_big_tiff(tmp_path: Path, byteorder: str) -> None:
    path = tmp_path / "slide"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8), bigtiff=True, byteorder=byteorder)
    assert sniff(path) is FileKind.TIFF


def test_zip_and_empty_zip(tmp_path: Path) -> None:
    for members in ([("a.dcm", b"x")], []):
        path = tmp_path / "upload.bin"
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members:
                zf.writestr(name, data)
        assert sniff(path) is FileKind.ZIP


# iter_files -----------------------------------------------------------------------------
def _tree(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_walk_is_sorted_and_skips_hidden_and_junk(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        [
            "b/IM2",
            "b/IM10",
            "a.dcm",
            "c/d/e.dcm",
            ".git/config",
            "c/.hidden.dcm",
            "c/.DS_Store",
            "c/Thumbs.db",
            "__MACOSX/c/._e.dcm",
            "c/d/desktop.ini",
        ],
    )
    got = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])]
    assert got == ["a.dcm", "b/IM10", "b/IM2", "c/d/e.dcm"]


def test_explicit_files_keep_the_given_order_and_appear_once(tmp_path: Path) -> None:
    _tree(tmp_path, ["z.dcm", "dir/a.dcm", ".hidden.dcm", ".DS_Store"])
    given = [
        tmp_path / "z.dcm",
        tmp_path / "dir",
        tmp_path / ".hidden.dcm",  # named explicitly: the user meant it
        tmp_path / ".DS_Store",  # junk is junk even when named
        tmp_path / "dir" / "a.dcm",  # already yielded from dir
        tmp_path / "z.dcm",
    ]
    got = [p.relative_to(tmp_path).as_posix() for p in iter_files(given)]
    assert got == ["z.dcm", "dir/a.dcm", ".hidden.dcm"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_folder_symlinks_are_not_followed(tmp_path: Path) -> None:
    _tree(tmp_path, ["study/a.dcm"])
    (tmp_path / "study" / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "study" / "b.dcm").symlink_to(tmp_path / "study" / "a.dcm")
    got = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])]
    assert got == ["study/a.dcm"]  # b.dcm is the same file as a.dcm


def test_missing_path_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="nowhere"):
        list(iter_files([tmp_path / "nowhere"]))


def test_walk_of_a_real_dicom_media_folder() -> None:
    root = PYDICOM_FILES / "dicomdirtests"
    files = list(iter_files([root]))
    kinds = {p.relative_to(root).as_posix(): sniff(p) for p in files}
    assert kinds["DICOMDIR"] is FileKind.DICOMDIR
    assert kinds["98892003/MR700/4648"] is FileKind.DICOM
    assert kinds["README.txt"] is FileKind.UNKNOWN
    images = [k for k, v in kinds.items() if v is FileKind.DICOM]
    assert len(images) >= 30
    assert files == sorted(files, key=lambda p: p.relative_to(root).parts)


def test_is_junk() -> None:
    assert all(map(is_junk, ["__MACOSX", ".DS_Store", "._IM1", "Thumbs.db", "desktop.ini"]))
    assert not any(map(is_junk, ["IM1", "DICOMDIR", "_MACOSX", "thumbs.db.dcm"]))
