"""Every image among pydicom's and pydicom-data's test files, de-identified and written.

The files cover big endian, implicit VR, missing file meta, UN sequences, private
sequences, overlays, compressed transfer syntaxes and odd VRs. For each: no exception, no
original identifier in the written header, pixels byte-identical, file re-readable.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data.data_manager import DATA_ROOT, DataTypes, external_data_sources
from pydicom.dataset import Dataset, FileDataset

from medlabel.security.deid import Deidentifier, DeidOptions, profile_table

SECRET = "project-secret-0123456789"
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: Attributes whose values are identifiers (any that occur in a file must disappear).
IDENTIFYING = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "OtherPatientIDs",
    "OtherPatientNames",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "AccessionNumber",
    "StudyID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "DeviceSerialNumber",
    "StationName",
    "InstitutionalDepartmentName",
    "RequestingPhysician",
)
GEOMETRY = (
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
    "RescaleSlope",
    "RescaleIntercept",
    "NumberOfFrames",
    "BitsAllocated",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "SliceThickness",
)


def _candidate_paths() -> Iterator[Path]:
    # Not pydicom.data.get_testdata_files(): it also tries to download the online files.
    yield from sorted(p for p in Path(DATA_ROOT, "test_files").rglob("*") if p.is_file())
    for source in external_data_sources().values():
        yield from sorted(Path(p) for p in source.get_paths("*", DataTypes.DATASET))


def _read(path: Path) -> FileDataset | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path, force=True)
    except Exception:  # not DICOM, or broken on purpose: pydicom itself cannot read it
        return None


def _image_files() -> list[Path]:
    out = []
    for path in _candidate_paths():
        ds = _read(path)
        if ds is not None and any(k in ds for k in PIXEL_KEYWORDS):
            out.append(path)
    return out


IMAGE_FILES = _image_files()


def _strings(value: object) -> list[str]:
    items = value if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value]
    return [str(v).strip() for v in items if v is not None and str(v).strip()]


def _is_short_number(text: str) -> bool:
    return len(text) < 8 and all(c in "0123456789.+-\\ " for c in text)


def _identifiers(ds: Dataset) -> set[str]:
    """Original identifying strings: listed attributes (also in sequences) and private text.

    Short numbers (a Study ID '134', technical private values '0.0') are left out: the
    same numbers legitimately occur in kept attributes such as Series Number.
    """
    found: set[str] = set()
    for elem in ds.iterall():
        if elem.VR in ("SQ", "UN", "OB", "OW") or elem.value is None:
            continue
        if elem.keyword in IDENTIFYING:
            for text in _strings(elem.value):
                if elem.VR == "PN":
                    found.update(p for p in text.replace("=", "^").split("^") if len(p) >= 3)
                if not _is_short_number(text):
                    found.add(text)
        elif elem.tag.is_private:
            found.update(t for t in _strings(elem.value) if not _is_short_number(t))
    return found


def _kept_values(ds: Dataset) -> set[str]:
    """Strings of public attributes outside Table E.1-1 that are legitimately kept."""
    table = profile_table()
    kept: set[str] = set()
    for elem in ds.iterall():
        if elem.tag.is_private or elem.tag in table or elem.VR in ("SQ", "PN", "UI", "DA", "DT"):
            continue
        if elem.VR in ("OB", "OW", "UN"):
            continue
        kept.update(_strings(elem.value))
    return kept


def _header_bytes(data: bytes) -> bytes:
    """The written file without its pixel data (binary pixels can match short strings)."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def _enforce(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    return bool(meta) and all(meta.get(k) for k in ("TransferSyntaxUID", "MediaStorageSOPClassUID"))


def _write(ds: Dataset) -> bytes | None:
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=_enforce(ds))
    except (TypeError, ValueError, AttributeError):
        return None
    return buffer.getvalue()


def test_the_sweep_covers_the_hard_cases() -> None:
    names = {p.name for p in IMAGE_FILES}
    assert len(IMAGE_FILES) >= 150
    for name in (
        "CT_small.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "OT-PAL-8-face.dcm",
        "nested_priv_SQ.dcm",
        "MR-SIEMENS-DICOM-WithOverlays.dcm",
        "JPEG2000.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "US1_J2KR.dcm",
        "explicit_VR-UN.dcm",
    ):
        assert name in names, name
    overlays = _read(next(p for p in IMAGE_FILES if p.name.startswith("MR-SIEMENS")))
    assert overlays is not None and any(e.tag.group == 0x6000 for e in overlays)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom about the originals' odd values
@pytest.mark.parametrize("shift_dates", [False, True], ids=["basic", "shifted"])
def test_every_image_file(shift_dates: bool) -> None:
    options = DeidOptions(
        shift_dates=shift_dates, retain_descriptions=True, retain_patient_characteristics=True
    )
    deid = Deidentifier(SECRET, options)
    failures: list[str] = []
    for path in IMAGE_FILES:
        original = _read(path)
        ds = _read(path)
        assert original is not None and ds is not None
        originally_writable = _write(original) is not None
        secrets = _identifiers(original) - {
            v for v in _identifiers(original) for kept in _kept_values(original) if v in kept
        }
        if not shift_dates and original.get("StudyDate"):
            secrets.add(str(original.StudyDate))
        deid.deidentify(ds)  # must not raise on any file
        data = _write(ds)
        if data is None:
            if originally_writable:
                failures.append(f"{path.name}: no longer writable")
            continue
        header = _header_bytes(data)
        leaked = sorted(s for s in secrets if s.encode("utf-8", "ignore") in header)
        if leaked:
            failures.append(f"{path.name}: {len(leaked)} identifiers left, e.g. {leaked[0]!r}")
        again = pydicom.dcmread(io.BytesIO(data), force=True)
        for keyword in (*PIXEL_KEYWORDS, *GEOMETRY):
            if keyword in original and again.get(keyword) != original.get(keyword):
                failures.append(f"{path.name}: {keyword} changed")
        if again.get("PatientIdentityRemoved") != "YES":
            failures.append(f"{path.name}: not marked as de-identified")
        if any(e.tag.is_private for e in again.iterall()):
            failures.append(f"{path.name}: private attributes left")
        if any(e.tag.group >> 8 in (0x50, 0x60) for e in again.iterall()):
            failures.append(f"{path.name}: curve or overlay attributes left")
    assert not failures, "\n".join(failures)
