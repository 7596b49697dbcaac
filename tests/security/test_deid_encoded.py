"""Deidentifier.deidentify_file (the encoded fast path) against deidentify (the reference).

Whenever the fast path takes a file, its bytes must be exactly what ``deidentify``
followed by ``dicom_file_bytes`` writes, with the same report; the files it declines
must be ones it is documented to decline.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medlabel.io.dicom.encoded import NotScannableError, scan_file
from medlabel.io.dicom.writing import dicom_file_bytes
from medlabel.security.deid import Deidentifier, DeidOptions, DeidResult
from tests.support.dicom_files import pydicom_test_files

SECRET = "project-secret-0123456789"


def _reference(data: bytes, options: DeidOptions) -> tuple[bytes, DeidResult] | None:
    """deidentify on the data set pydicom reads, then the file as written; None if
    pydicom cannot do it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data))
            result = Deidentifier(SECRET, options).deidentify(ds)
            return dicom_file_bytes(ds, data), result
    except Exception:  # broken on purpose: the reference cannot de-identify it either
        return None


def _same(data: bytes, options: DeidOptions) -> bool | None:
    """None if the fast path declines ``data``, else whether it equals the reference."""
    fast = Deidentifier(SECRET, options).deidentify_file(data)
    if fast is None:
        return None
    encoded, result = fast
    reference = _reference(data, options)
    assert reference is not None, "the fast path took a file the reference cannot read"
    ref_bytes, ref_result = reference
    assert list(result.actions) == list(ref_result.actions)  # the report's order too
    return encoded.data == ref_bytes and result == ref_result


@pytest.mark.slow
@pytest.mark.parametrize(
    "options", [DeidOptions(), DeidOptions(shift_dates=True)], ids=["basic", "shift-dates"]
)
def test_every_test_file_taken_is_byte_identical_to_the_reference(options: DeidOptions) -> None:
    taken, different = [], []
    for path in pydicom_test_files():
        same = _same(path.read_bytes(), options)
        if same is None:
            continue
        taken.append(path.name)
        if not same:
            different.append(path.name)
    assert different == []
    # most files are explicit VR little endian: the fast path must take them
    assert len(taken) >= 90
    for name in ("CT_small.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "emri_small.dcm"):
        assert name in taken


def _file(ds: Dataset) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.SourceApplicationEntityTitle = "SENDER"
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _image() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = "20240131"
    ds.Modality = "CT"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID-0042"
    ds.PatientBirthDate = "19700101"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = b"\x01\x00\x02\x00\x03\x00\x04\x00"
    return ds


def _nested() -> Dataset:
    """Sequences of both lengths, nested, with identifiers, private data and overlays."""
    ds = _image()
    inner = Dataset()
    inner.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    inner.ReferencedSOPInstanceUID = generate_uid()
    inner.add_new(0x00091010, "LO", "private in an item")
    item = Dataset()
    item.PersonName = "Smith^John"
    item.InstanceCreationDate = "20231224"
    item.ReferencedImageSequence = Sequence([inner])
    item.is_undefined_length_sequence_item = True
    ds.ContentSequence = Sequence([item, Dataset()])
    ds["ContentSequence"].is_undefined_length = True
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "1", "99X", "Hospital A"
    ds.InstitutionCodeSequence = Sequence([code])
    procedure = Dataset()
    procedure.CodeValue, procedure.CodingSchemeDesignator = "P1", "99X"
    procedure.CodeMeaning = "Head CT for patient Doe"
    ds.ProcedureCodeSequence = Sequence([procedure])
    ds.add_new(0x00290010, "LO", "ACME 1.0")
    ds.add_new(0x00291010, "OB", b"secret\x00\x00")
    ds.add_new(0x60000010, "US", 2)
    ds.add_new(0x60003000, "OW", b"\x00\x00")
    ds.add_new(0x50000005, "US", 1)
    ds.OtherPatientIDs = "OTHER-1"
    ds.DeviceSerialNumber = "SN-123"
    ds.StationName = "CT01"
    ds.AcquisitionDateTime = "20240131120000.5+0100"
    ds.WindowCenter = "40"
    return ds


@pytest.mark.parametrize(
    "options", [DeidOptions(), DeidOptions(shift_dates=True)], ids=["basic", "shift-dates"]
)
def test_nested_sequences_private_data_and_overlays_as_the_reference(
    options: DeidOptions,
) -> None:
    data = _file(_nested())
    assert _same(data, options) is True


def test_the_file_written_has_no_identifier_and_reads_back() -> None:
    data = _file(_nested())
    fast = Deidentifier(SECRET).deidentify_file(data)
    assert fast is not None
    encoded, result = fast
    for text in (b"Doe^Jane", b"PID-0042", b"Smith", b"OTHER-1", b"SN-123", b"SENDER",
                 b"secret", b"Hospital A", b"19700101"):  # fmt: skip
        assert text not in encoded.data
    back = pydicom.dcmread(io.BytesIO(encoded.data))
    assert back.PatientID == result.patient_pseudonym == encoded.dataset.PatientID
    assert back.PixelData == b"\x01\x00\x02\x00\x03\x00\x04\x00"
    assert back.PatientIdentityRemoved == "YES"
    assert result.actions["PrivateAttributes"] == {"removed": 3}


def test_put_text_changes_the_file_and_its_view() -> None:
    fast = Deidentifier(SECRET).deidentify_file(_file(_image()))
    assert fast is not None
    encoded = fast[0]
    assert "FrameOfReferenceUID" not in encoded.dataset
    encoded.put_text(0x00200052, "UI", "1.2.3.4")
    assert encoded.dataset.FrameOfReferenceUID == "1.2.3.4"
    assert pydicom.dcmread(io.BytesIO(encoded.data)).FrameOfReferenceUID == "1.2.3.4"


def test_declines_what_it_does_not_do_as_the_reference() -> None:
    deid = Deidentifier(SECRET)
    implicit = Path(get_testdata_file("MR_small_implicit.dcm")).read_bytes()
    assert deid.deidentify_file(implicit) is None
    clean = Deidentifier(SECRET, DeidOptions(retain_descriptions=True))
    assert clean.deidentify_file(_file(_image())) is None
    malformed = _image()
    malformed.StudyDate = "2024-01-31"  # deidentify empties it, with a warning
    assert (
        Deidentifier(SECRET, DeidOptions(shift_dates=True)).deidentify_file(_file(malformed))
        is None
    )


@pytest.mark.parametrize(
    ("cut", "reason"),
    [
        (lambda d: d[:100], "no preamble"),
        (lambda d: d[:-3], "truncated"),
        (lambda d: d + b"\0", ""),
    ],
)
def test_the_scanner_refuses_truncated_and_malformed_files(cut, reason) -> None:  # type: ignore[no-untyped-def]
    data = _file(_image())
    scan_file(data)
    with pytest.raises(NotScannableError, match=reason):
        scan_file(cut(data))


def test_files_of_one_series_share_a_header_template_and_stay_exact() -> None:
    """The file meta information is made once per series and reused with each file's
    SOP Instance UID (whose length varies): every file still equals the reference."""
    first = _image()
    for n in range(4):
        ds = _image()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = first.StudyInstanceUID, first.SeriesInstanceUID
        ds.SOPInstanceUID = f"1.2.3.{'9' * n}"
        assert _same(_file(ds), DeidOptions()) is True


def test_values_the_reference_reads_are_written_as_it_writes_them() -> None:
    """The reference path reads a few attributes as values (the SOP Class UID, the
    character set, Burned In Annotation...) and its writer encodes them again: a UID
    padded with a space, or a code string padded with a NUL, comes out padded the
    standard way on both paths."""
    ds = _image()
    ds.BurnedInAnnotation = "YES"
    data = _file(ds)
    uid = b"1.2.840.10008.5.1.4.1.1.2"  # 25 characters: padded
    odd = data.replace(uid + b"\0", uid + b" ").replace(b"YES ", b"YES\0")
    assert odd != data
    fast = Deidentifier(SECRET).deidentify_file(odd)
    assert fast is not None
    assert uid + b"\0" in fast[0].data and b"YES " in fast[0].data
    assert _same(odd, DeidOptions()) is True
