"""dicom_file_bytes: the same bytes as pydicom's dcmwrite, elements copied where unchanged."""

from __future__ import annotations

import io
import warnings

import pydicom
import pytest
from pydicom.dataset import Dataset

from medlabel.io.dicom import writing
from medlabel.io.dicom.writing import dicom_file_bytes
from medlabel.security.deid import Deidentifier
from tests.io.conftest import data_path
from tests.support.dicom_files import pydicom_test_files

SECRET = "project-secret-0123456789"


def _read(data: bytes) -> Dataset | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception:  # broken on purpose: pydicom itself cannot read it
        return None


def _dcmwrite(ds: Dataset) -> bytes | str:
    buf = io.BytesIO()
    try:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    except Exception as exc:
        return type(exc).__name__
    return buf.getvalue()


def _ours(ds: Dataset, data: bytes) -> bytes | str:
    try:
        return dicom_file_bytes(ds, data)
    except Exception as exc:
        return type(exc).__name__


def _deidentified(deid: Deidentifier, ds: Dataset) -> bool:
    try:
        deid.deidentify(ds)
    except Exception:
        return False
    return True


def _written_by_pydicom(
    monkeypatch: pytest.MonkeyPatch, ds: Dataset, data: bytes
) -> tuple[bytes, list[int]]:
    """``dicom_file_bytes(ds, data)`` and the tags it left to pydicom's encoder."""
    encoded: list[int] = []
    original = writing.write_data_element

    def spy(fp, elem, encodings=None):  # type: ignore[no-untyped-def]
        encoded.append(int(elem.tag))
        original(fp, elem, encodings)

    with monkeypatch.context() as patch:
        patch.setattr(writing, "write_data_element", spy)
        return dicom_file_bytes(ds, data), encoded


# ------------------------------------------------------------------------------ edge cases
def test_without_source_bytes_it_is_dcmwrite() -> None:
    data = data_path("CT_small.dcm").read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    assert dicom_file_bytes(ds) == _dcmwrite(pydicom.dcmread(io.BytesIO(data)))


def test_source_bytes_that_differ_from_the_data_set_are_not_copied() -> None:
    data = data_path("CT_small.dcm").read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    other = bytearray(data)
    start = ds.get_item(0x00100010).value_tell  # PatientName, still raw
    other[start : start + 4] = b"XXXX"
    assert dicom_file_bytes(ds, bytes(other)) == _dcmwrite(pydicom.dcmread(io.BytesIO(data)))


def test_a_data_set_dcmwrite_refuses_raises_the_same_error() -> None:
    data = data_path("CT_small.dcm").read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.5.1.4.1.1.2"  # a SOP class, not a syntax
    with pytest.raises(ValueError, match="not a valid transfer syntax"):
        dicom_file_bytes(ds, data)


def test_unchanged_elements_are_copied_not_encoded(monkeypatch: pytest.MonkeyPatch) -> None:
    data = data_path("693_UNCR.dcm").read_bytes()
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.PatientName = "Anonymous"
    out, encoded = _written_by_pydicom(monkeypatch, ds, data)
    # besides the changed name, only what dcmwrite itself decodes (character set, SOP
    # Class and Instance UIDs) is encoded again; Pixel Data and the rest are copied
    assert 0x00100010 in encoded and 0x7FE00010 not in encoded and len(encoded) <= 4
    assert out == _dcmwrite(ds)


# ------------------------------------------------------------------------ every test file
@pytest.mark.slow
def test_every_test_file_de_identified_is_written_as_dcmwrite_writes_it() -> None:
    deid = Deidentifier(SECRET)
    checked = 0
    for path in pydicom_test_files():
        data = path.read_bytes()
        ours, reference = _read(data), _read(data)
        if ours is None or reference is None:
            continue
        if not (_deidentified(deid, ours) and _deidentified(deid, reference)):
            continue  # a file the de-identifier refuses is not this test's subject
        assert _ours(ours, data) == _dcmwrite(reference), path.name
        checked += 1
    assert checked > 100


def test_changed_ascii_text_and_integers_are_encoded_without_pydicom(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("693_UNCR.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm"):
        data = data_path(name).read_bytes()
        ds, reference = (pydicom.dcmread(io.BytesIO(data)) for _ in range(2))
        for d in (ds, reference):
            d.PatientID = "ANON-123"  # LO, odd length: padded with a space
            d.StudyInstanceUID = "2.25.12345"  # UI, odd length: padded with a NUL
            d.ImageType = ["DERIVED", "SECONDARY"]  # CS, multi-valued
            d.Rows = d.Rows  # US, converted from the raw element
            d.StudyDate = ""  # emptied
        out, encoded = _written_by_pydicom(monkeypatch, ds, data)
        assert not {0x00100020, 0x0020000D, 0x00080008, 0x00280010, 0x00080020} & set(encoded)
        assert out == _dcmwrite(reference), name
