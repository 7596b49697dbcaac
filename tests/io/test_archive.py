"""Tests of medlabel.io.archive.extract_zip: hostile archives are rejected and leave nothing."""

from __future__ import annotations

import io
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from medlabel.core.errors import InvalidInputError, TooLargeError, UnsupportedFormatError
from medlabel.io.archive import extract_zip

LIMITS = {"max_members": 100, "max_total_bytes": 10**9, "max_ratio": 200.0}
MiB = 1024 * 1024


def _zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], **kwargs: object) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are written on purpose
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, **kwargs) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def _patch(path: Path, name: str, **fields: int) -> None:
    """Overwrite header fields of one member in both its local and central headers.

    ``fields``: ``flags``, ``method``, ``crc``, ``usize`` (uncompressed size).
    """
    local_at = {"flags": (6, "<H"), "method": (8, "<H"), "crc": (14, "<I"), "usize": (22, "<I")}
    central_at = {"flags": (8, "<H"), "method": (10, "<H"), "crc": (16, "<I"), "usize": (24, "<I")}
    data = bytearray(path.read_bytes())
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        n = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + n].decode() == name:
            local = struct.unpack_from("<I", data, pos + 42)[0]
            for key, value in fields.items():
                struct.pack_into(central_at[key][1], data, pos + central_at[key][0], value)
                struct.pack_into(local_at[key][1], data, local + local_at[key][0], value)
            path.write_bytes(bytes(data))
            return
        pos = data.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"{name} not in {path}")


def _assert_nothing_left(tmp_path: Path, dest: Path, archive: Path) -> None:
    assert not dest.exists()
    leftovers = [p for p in tmp_path.rglob("*") if p != archive]
    assert leftovers == [], f"extraction left {leftovers}"


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real zip bomb: 100 MiB of zeros deflated to about 100 KiB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("readme.txt", b"scan of the week")
        with zf.open("zeros.bin", "w") as f:
            for _ in range(100):
                f.write(bytes(MiB))
    return path


# hostile names and entries ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../evil.txt", r"'\.\./evil\.txt' points outside"),
        ("scans/../../evil.txt", "points outside"),
        ("..\\evil.txt", "points outside"),
        ("/etc/evil.txt", "absolute path"),
        ("C:/evil.txt", "absolute path"),
        ("C:\\evil.txt", "absolute path"),
    ],
)
def test_zip_slip_is_rejected(tmp_path: Path, name: str, match: str) -> None:
    archive = _zip(tmp_path / "up.zip", [("ok/a.dcm", b"fine"), (name, b"owned")])
    dest = tmp_path / "out"
    with pytest.raises(InvalidInputError, match=rf"up\.zip: member .*{match}"):
        extract_zip(archive, dest, **LIMITS)
    _assert_nothing_left(tmp_path, dest, archive)
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.parametrize(
    ("file_type", "match"),
    [(stat.S_IFLNK, "symbolic link"), (stat.S_IFCHR, "device"), (stat.S_IFIFO, "pipe")],
)
def test_links_and_devices_are_rejected(tmp_path: Path, file_type: int, match: str) -> None:
    info = zipfile.ZipInfo("scans/link")
    info.create_system = 3  # Unix
    info.external_attr = (file_type | 0o777) << 16
    archive = _zip(tmp_path / "up.zip", [("scans/a.dcm", b"x"), (info, b"/etc/passwd")])
    dest = tmp_path / "out"
    with pytest.raises(InvalidInputError, match=rf"'scans/link' is a .*{match}"):
        extract_zip(archive, dest, **LIMITS)
    _assert_nothing_left(tmp_path, dest, archive)


def test_encrypted_member_is_unsupported(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "up.zip", [("a.dcm", b"x"), ("secret.dcm", b"y")])
    _patch(archive, "secret.dcm", flags=0x1)
    with pytest.raises(UnsupportedFormatError, match=r"'secret\.dcm' is encrypted"):
        extract_zip(archive, tmp_path / "out", **LIMITS)
    _assert_nothing_left(tmp_path, tmp_path / "out", archive)


def test_unknown_compression_method_is_unsupported(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "up.zip", [("big.dcm", b"x" * 1000)])
    _patch(archive, "big.dcm", method=9)  # Deflate64, as Windows Explorer writes large files
    with pytest.raises(UnsupportedFormatError, match="compression method 9"):
        extract_zip(archive, tmp_path / "out", **LIMITS)


def test_duplicate_names_are_rejected(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "up.zip", [("a/1.dcm", b"first"), ("a/./1.dcm", b"second")])
    with pytest.raises(InvalidInputError, match="appears twice"):
        extract_zip(archive, tmp_path / "out", **LIMITS)


def test_file_and_folder_with_the_same_name(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "up.zip", [("a", b"file"), ("a/b.dcm", b"x")])
    dest = tmp_path / "out"
    with pytest.raises(InvalidInputError, match=r"'a/b\.dcm' could not be extracted"):
        extract_zip(archive, dest, **LIMITS)
    _assert_nothing_left(tmp_path, dest, archive)


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 not really", b"plain text " * 50])
def test_not_a_zip(tmp_path: Path, data: bytes) -> None:
    archive = tmp_path / "up.zip"
    archive.write_bytes(data)
    with pytest.raises(InvalidInputError, match=r"up\.zip: not a readable zip"):
        extract_zip(archive, tmp_path / "out", **LIMITS)
    _assert_nothing_left(tmp_path, tmp_path / "out", archive)


def test_corrupt_second_member_removes_the_first(tmp_path: Path) -> None:
    payload = b"DICOM-ish data " * 100
    archive = tmp_path / "up.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("1.dcm", payload)
        zf.writestr("2.dcm", payload)
    data = bytearray(archive.read_bytes())
    data[data.rindex(payload) + 10] ^= 0xFF  # flip a byte in the second member's data
    archive.write_bytes(bytes(data))
    dest = tmp_path / "out"
    with pytest.raises(InvalidInputError, match=r"'2\.dcm' could not be extracted .*CRC"):
        extract_zip(archive, dest, **LIMITS)
    _assert_nothing_left(tmp_path, dest, archive)


# size limits ------------------------------------------------------------------------------
def test_zip_bomb_exceeds_declared_total(tmp_path: Path, bomb: Path) -> None:
    dest = tmp_path / "out"
    limits = {**LIMITS, "max_total_bytes": 10 * MiB, "max_ratio": 10**6}
    with pytest.raises(TooLargeError, match=r"bomb\.zip: archive unpacks to 104857616 bytes"):
        extract_zip(bomb, dest, **limits)
    assert list(tmp_path.iterdir()) == []


def test_zip_bomb_exceeds_ratio(tmp_path: Path, bomb: Path) -> None:
    with pytest.raises(TooLargeError, match=r"'zeros\.bin' expands \d+ times"):
        extract_zip(bomb, tmp_path / "out", **LIMITS)
    assert list(tmp_path.iterdir()) == []


def test_small_compressible_files_are_not_judged_by_ratio(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "up.zip", [("mask.nii", bytes(100_000))])
    files = extract_zip(archive, tmp_path / "out", **{**LIMITS, "max_ratio": 2.0})
    assert files[0].read_bytes() == bytes(100_000)


def test_total_limit_is_inclusive(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "up.zip", [("a", b"x" * 60), ("b", b"y" * 40)])
    with pytest.raises(TooLargeError, match="unpacks to 100 bytes"):
        extract_zip(archive, tmp_path / "no", **{**LIMITS, "max_total_bytes": 99})
    assert len(extract_zip(archive, tmp_path / "out", **{**LIMITS, "max_total_bytes": 100})) == 2


def test_too_many_members(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "up.zip", [(f"{i}.dcm", b"x") for i in range(3)])
    with pytest.raises(TooLargeError, match="3 entries, above the limit of 2"):
        extract_zip(archive, tmp_path / "out", **{**LIMITS, "max_members": 2})


def test_lying_header_is_caught_while_streaming(tmp_path: Path) -> None:
    # 8 MiB of zeros whose headers claim 1000 bytes: every declared check passes.
    archive = _zip(tmp_path / "up.zip", [("a.dcm", b"fine"), ("liar.bin", bytes(8 * MiB))])
    _patch(archive, "liar.bin", usize=1000)
    assert zipfile.ZipFile(archive).getinfo("liar.bin").file_size == 1000
    dest = tmp_path / "out"
    with pytest.raises(InvalidInputError, match=r"'liar\.bin'"):
        extract_zip(archive, dest, **{**LIMITS, "max_total_bytes": 2000, "max_ratio": 2.0})
    _assert_nothing_left(tmp_path, dest, archive)


def test_bytes_beyond_the_declared_size_are_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # If the decompressor ever returned more than the header declares (zipfile caps it
    # today), the byte count must stop the copy.
    archive = _zip(tmp_path / "up.zip", [("a.dcm", b"x" * 10)])
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info: io.BytesIO(bytes(5 * MiB)))
    dest = tmp_path / "out"
    with pytest.raises(InvalidInputError, match=r"more data than its header declares \(10 bytes"):
        extract_zip(archive, dest, **LIMITS)
    _assert_nothing_left(tmp_path, dest, archive)


# normal archives --------------------------------------------------------------------------
def test_extracts_real_files_skipping_junk(tmp_path: Path) -> None:
    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("deeper.dcm", ct)
    archive = _zip(
        tmp_path / "up.zip",
        [
            ("study/", b""),
            ("study/series1/IM0001", ct),
            ("__MACOSX/study/series1/._IM0001", b"resource fork"),
            ("study/.DS_Store", b"finder"),
            ("Thumbs.db", b"thumbs"),
            ("./study/notes.txt", b"hello"),
            ("nested.zip", inner.getvalue()),
        ],
    )
    dest = tmp_path / "out"
    files = extract_zip(archive, dest, **LIMITS)
    assert [f.relative_to(dest).as_posix() for f in files] == [
        "study/series1/IM0001",
        "study/notes.txt",
        "nested.zip",
    ]
    assert files[0].read_bytes() == ct
    assert files[2].read_bytes() == inner.getvalue()  # not opened: the caller decides
    assert sorted(p.name for p in dest.rglob("*")) == [
        "IM0001",
        "nested.zip",
        "notes.txt",
        "series1",
        "study",
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_empty_archive_and_existing_empty_dest(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "up.zip", [])
    dest = tmp_path / "out"
    dest.mkdir()
    assert extract_zip(archive, dest, **LIMITS) == []
    assert dest.is_dir() and list(dest.iterdir()) == []


def test_dest_parent_is_created(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "up.zip", [("a.dcm", b"x")])
    files = extract_zip(archive, tmp_path / "jobs" / "42" / "files", **LIMITS)
    assert files == [tmp_path / "jobs" / "42" / "files" / "a.dcm"]


def test_non_empty_dest_is_a_caller_error(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "up.zip", [("a.dcm", b"x")])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="must not exist or be an empty folder"):
        extract_zip(archive, dest, **LIMITS)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
