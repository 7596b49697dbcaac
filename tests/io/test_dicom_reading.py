"""read_dataset and sop_kind on real pydicom files: broken input first."""

from __future__ import annotations

import copy

import pydicom
import pytest
from pydicom.uid import MPEG2MPHL, MPEG2MPML

from medlabel.core.errors import InvalidInputError, TooLargeError, UnsupportedFormatError
from medlabel.io.dicom import SopKind, is_image, read_dataset, sop_kind
from medlabel.io.dicom import reading as reading_module
from tests.io.conftest import PYDICOM_FILES, data_path, read_testdata, to_bytes


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "content",
    [b"", b"hello, this is a text file\n" * 20, b"\x89PNG\r\n\x1a\n" + bytes(200)],
    ids=["empty", "text", "png"],
)
def test_non_dicom_bytes_are_rejected_naming_the_file(content: bytes) -> None:
    with pytest.raises(InvalidInputError, match=r"notes\.txt is not a DICOM file"):
        read_dataset(content, name="notes.txt")


def test_text_file_from_pydicom_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match=r"README\.txt is not a DICOM file"):
        read_dataset(PYDICOM_FILES / "README.txt", name="README.txt")


def test_truncated_pixel_data_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match=r"MR_truncated\.dcm.*truncated.*8,130.*8,192"):
        read_testdata("MR_truncated.dcm")


def test_file_cut_in_half_is_rejected() -> None:
    data = data_path("CT_small.dcm").read_bytes()
    with pytest.raises(InvalidInputError, match=r"half\.dcm"):
        read_dataset(data[: len(data) // 2], name="half.dcm")


def test_file_cut_inside_the_header_is_rejected() -> None:
    data = data_path("CT_small.dcm").read_bytes()
    with pytest.raises(InvalidInputError, match="no SOP Class UID"):
        read_dataset(data[:300], name="cut.dcm")


@pytest.mark.parametrize(
    "name",
    ["JPEG2000-embedded-sequence-delimiter.dcm", "JPEG-lossy.dcm"],
)
def test_corrupt_compressed_pixel_data_is_rejected_as_corrupt(name: str) -> None:
    with pytest.raises(InvalidInputError, match="could not be decoded") as info:
        read_testdata(name)
    assert type(info.value) is InvalidInputError  # corrupt, not an unsupported format
    assert name in info.value.message


def test_compressed_stream_cut_short_is_rejected() -> None:
    with pytest.warns(UserWarning), pytest.raises(InvalidInputError, match="truncated"):
        read_testdata("emri_small_jpeg_2k_lossless_too_short.dcm")


def test_invalid_number_of_frames_is_rejected() -> None:
    with pytest.warns(UserWarning), pytest.raises(InvalidInputError, match="invalid value"):
        read_testdata("badVR.dcm")


def test_missing_rows_is_rejected() -> None:
    ds = pydicom.dcmread(data_path("CT_small.dcm"))
    del ds.Rows
    with pytest.raises(InvalidInputError, match=r"missing required attribute.*Rows"):
        read_dataset(to_bytes(ds), name="norows.dcm")


def test_video_transfer_syntax_is_unsupported() -> None:
    ds = pydicom.dcmread(data_path("MR_small_jp2klossless.dcm"))
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    with pytest.raises(UnsupportedFormatError, match=r"video.dcm.*MPEG2.*video") as info:
        read_dataset(to_bytes(ds), name="video.dcm")
    assert info.value.status_code == 415


def test_transfer_syntax_without_any_decoder_is_unsupported() -> None:
    ds = pydicom.dcmread(data_path("MR_small_jp2klossless.dcm"))
    ds.file_meta.TransferSyntaxUID = MPEG2MPHL  # same length as the JPEG XL UID
    data = to_bytes(ds).replace(MPEG2MPHL.encode(), b"1.2.840.10008.1.2.4.110")  # JPEG XL
    with pytest.raises(UnsupportedFormatError, match=r"4\.110.*no pixel decoder exists"):
        read_dataset(data, name="jxl.dcm")


def test_missing_decoder_plugin_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unavailable:
        is_available = False
        missing_dependencies = ("pylibjpeg - requires pylibjpeg-openjpeg",)

    monkeypatch.setattr(reading_module, "get_decoder", lambda uid: Unavailable())
    with pytest.raises(UnsupportedFormatError, match="install pylibjpeg-openjpeg") as info:
        read_testdata("MR_small_jp2klossless.dcm")
    assert "JPEG 2000" in info.value.message


def test_too_many_voxels_is_refused_before_decoding() -> None:
    with pytest.raises(TooLargeError, match=r"emri_small\.dcm.*40,960 voxels.*10 frames"):
        read_dataset(data_path("emri_small.dcm"), name="emri_small.dcm", max_voxels=40_000)


# --------------------------------------------------------------------------- accepted input
def test_reads_path_and_bytes_alike() -> None:
    path = data_path("CT_small.dcm")
    a = read_dataset(path, name="a")
    b = read_dataset(path.read_bytes(), name="b")
    assert a.SOPInstanceUID == b.SOPInstanceUID
    assert (a.pixel_array == b.pixel_array).all()


def test_file_without_preamble_is_accepted_when_it_has_sop_uids() -> None:
    ds = read_testdata("OT-PAL-8-face.dcm")  # no preamble, no file meta
    assert is_image(ds)
    assert ds.file_meta.TransferSyntaxUID.is_transfer_syntax
    assert ds.pixel_array.shape == (480, 640)


def test_file_without_preamble_or_sop_uids_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="no DICOM preamble"):
        read_testdata("no_meta.dcm")


def test_preamble_stripped_copy_of_a_real_file_is_accepted() -> None:
    data = data_path("CT_small.dcm").read_bytes()
    ds = read_dataset(data[132:], name="raw.dcm")
    assert ds.Rows == 128


def test_compressed_pixels_are_decoded_once_and_cached() -> None:
    ds = read_testdata("MR_small_jp2klossless.dcm")
    first = ds.pixel_array
    assert ds.pixel_array is first


def test_deflated_file_is_read() -> None:
    assert read_testdata("image_dfl.dcm").pixel_array.shape == (512, 512)


# --------------------------------------------------------------------------- kinds
@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("CT_small.dcm", SopKind.IMAGE),
        ("US1_J2KR.dcm", SopKind.IMAGE),
        ("liver.dcm", SopKind.SEGMENTATION),
        ("rtstruct.dcm", SopKind.RT),
        ("rtplan.dcm", SopKind.RT),
        ("rtdose.dcm", SopKind.RT),
        ("test-SR.dcm", SopKind.STRUCTURED_REPORT),
        ("waveform_ecg.dcm", SopKind.WAVEFORM),
    ],
)
def test_sop_kind(name: str, kind: SopKind) -> None:
    ds = read_testdata(name)
    assert sop_kind(ds) is kind
    assert is_image(ds) is (kind is SopKind.IMAGE)


def test_dicomdir_is_a_directory_not_an_image() -> None:
    ds = read_dataset(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR", name="DICOMDIR")
    assert sop_kind(ds) is SopKind.DIRECTORY


def test_kind_falls_back_to_modality_without_sop_class() -> None:
    ds = copy.deepcopy(pydicom.dcmread(data_path("liver.dcm"), stop_before_pixels=True))
    del ds.SOPClassUID
    assert sop_kind(ds) is SopKind.SEGMENTATION
