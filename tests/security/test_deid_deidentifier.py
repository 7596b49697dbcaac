"""Deidentifier on real pydicom test files and copies of them with changed values."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import logging
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.data.data_manager import DATA_ROOT
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

from medlabel.security.deid import (
    DATE_SHIFT_RANGE,
    Deidentifier,
    DeidOptions,
    DeidReport,
    DeidResult,
)

SECRET = "project-secret-0123456789"
ALL_OPTIONS = DeidOptions(
    shift_dates=True, retain_patient_characteristics=True, retain_descriptions=True
)
DICOMDIR_TESTS = Path(DATA_ROOT, "test_files", "dicomdirtests")


def ct() -> Dataset:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    return pydicom.dcmread(path)


def written(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def days_between(a: str, b: str) -> int:
    return (dt.datetime.strptime(a, "%Y%m%d") - dt.datetime.strptime(b, "%Y%m%d")).days


# -- construction and keyed derivations --------------------------------------------------


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        Deidentifier("short")


def test_empty_and_well_known_uids_are_kept() -> None:
    deid = Deidentifier(SECRET)
    assert deid.remap_uid("") == ""
    assert deid.remap_uid(CTImageStorage) == CTImageStorage
    assert deid.remap_uid(ExplicitVRLittleEndian) == ExplicitVRLittleEndian


def test_remapped_uid_is_valid_deterministic_and_keyed() -> None:
    a, b = Deidentifier(SECRET), Deidentifier(SECRET + "x")
    uid = "1.2.840.113619.2.1.2411.1031152382.365.1.736169244"
    new = a.remap_uid(uid)
    assert new.startswith("2.25.")
    assert UID(new).is_valid and len(new) <= 64
    assert new == Deidentifier(SECRET).remap_uid(uid)
    assert new == a.remap_uid(uid + "\x00")  # padding does not change the identity
    assert new != b.remap_uid(uid)
    assert new != a.remap_uid(uid + "1")


def test_pseudonym_and_offset_are_keyed_per_patient() -> None:
    a, b = Deidentifier(SECRET), Deidentifier(SECRET + "x")
    assert a.pseudonym("12345") == Deidentifier(SECRET).pseudonym("12345")
    assert a.pseudonym("12345") != a.pseudonym("12346")
    assert a.pseudonym("12345") != b.pseudonym("12345")
    assert len(a.pseudonym("12345")) == len("ANON-") + 12
    offsets = {a.date_offset_days(str(i)) for i in range(200)}
    assert min(offsets) >= DATE_SHIFT_RANGE[0] and max(offsets) <= DATE_SHIFT_RANGE[1]
    assert len(offsets) > 150  # spread over the range, not a constant


# -- the basic profile on CT_small -------------------------------------------------------


def test_basic_profile_on_ct() -> None:
    ds = ct()
    original = ct()
    result = Deidentifier(SECRET).deidentify(ds)
    assert ds.PatientName == ds.PatientID == result.patient_pseudonym
    assert ds.PatientBirthDate == "" and ds.StudyDate == "" and ds.AccessionNumber == ""
    assert ds.InstitutionName == "ANONYMIZED"
    for keyword in ("PatientAge", "PatientWeight", "StudyDescription", "OtherPatientIDsSequence"):
        assert keyword not in ds
    assert not any(elem.tag.is_private for elem in ds.iterall())
    assert ds.SOPClassUID == original.SOPClassUID
    assert ds.StudyInstanceUID != original.StudyInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert "SourceApplicationEntityTitle" not in ds.file_meta
    # declared as de-identified
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert "2026c" in str(ds.DeidentificationMethod)
    # pixels and geometry untouched
    for keyword in (
        "PixelData",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PixelSpacing",
        "Rows",
        "Columns",
        "RescaleSlope",
        "RescaleIntercept",
        "SliceThickness",
    ):
        assert ds[keyword].value == original[keyword].value, keyword
    assert result.action_for("PatientName") == "pseudonymized"
    assert result.action_for("StudyInstanceUID") == "uid_remapped"
    assert result.action_for("PatientAge") == "removed"
    assert result.action_for("Rows") is None


def test_written_file_has_no_identifier_and_rereads() -> None:
    ds = ct()
    secrets = [str(ct().PatientName), ct().PatientID, ct().StudyInstanceUID, "20040119"]
    Deidentifier(SECRET).deidentify(ds)
    data = written(ds)
    for value in secrets:
        assert value.encode() not in data, value
    again = pydicom.dcmread(io.BytesIO(data))
    assert again.PixelData == ct().PixelData
    assert again.pixel_array.shape == (128, 128)


def test_result_and_report_hold_no_original_value() -> None:
    originals = [str(ct().PatientName), ct().PatientID, ct().StudyInstanceUID, ct().StudyDate]
    deid = Deidentifier(SECRET, ALL_OPTIONS)
    report = DeidReport(deid.options)
    results = [deid.deidentify(ct()) for _ in range(3)]
    for result in results:
        report.add(result)
    text = json.dumps(report.to_dict()) + repr(results)
    for value in originals:
        assert value not in text
    summary = json.loads(json.dumps(report.to_dict()))
    assert summary["instances"] == 3
    assert summary["table_edition"] == "2026c"
    assert summary["options"]["shift_dates"] is True
    assert summary["actions"]["PatientName"] == {"pseudonymized": 3}
    assert summary["actions"]["PrivateAttributes"]["removed"] > 0


def test_report_deduplicates_warnings_with_counts() -> None:
    report = DeidReport(DeidOptions())
    for _ in range(2):
        report.add(DeidResult({}, ("pixels may show text",), "ANON-1"))
    report.add(DeidResult({}, ("other",), "ANON-2"))
    warnings = report.to_dict()["warnings"]
    assert warnings == [
        {"message": "other", "count": 1},
        {"message": "pixels may show text", "count": 2},
    ]


# -- consistency across instances --------------------------------------------------------


def test_one_series_keeps_one_series_uid() -> None:
    paths = sorted((DICOMDIR_TESTS / "77654033" / "CT2").iterdir())
    datasets = [pydicom.dcmread(p) for p in paths]
    assert len({d.SeriesInstanceUID for d in datasets}) == 1
    deid = Deidentifier(SECRET)
    for ds in datasets:
        deid.deidentify(ds)
    assert len({d.SeriesInstanceUID for d in datasets}) == 1
    assert len({d.StudyInstanceUID for d in datasets}) == 1
    assert len({d.SOPInstanceUID for d in datasets}) == len(datasets)
    assert len({d.PatientID for d in datasets}) == 1


def test_references_follow_the_remapped_instance() -> None:
    source, derived = ct(), ct()
    derived.SOPInstanceUID = derived.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.7"
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    derived.ReferencedImageSequence = [reference]
    nested = Dataset()
    nested.SourceImageSequence = [copy.deepcopy(reference)]
    derived.DerivationCodeSequence = [nested]
    deid = Deidentifier(SECRET)
    deid.deidentify(source)
    deid.deidentify(derived)
    ref = derived.ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert ref.ReferencedSOPClassUID == CTImageStorage
    deep = derived.DerivationCodeSequence[0].SourceImageSequence[0]
    assert deep.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert derived.SOPInstanceUID != source.SOPInstanceUID


def test_enhanced_multiframe_keeps_functional_groups() -> None:
    path = get_testdata_file("liver_1frame.dcm")
    assert path is not None
    ds, original = pydicom.dcmread(path), pydicom.dcmread(path)
    Deidentifier(SECRET).deidentify(ds)
    shared, before = (
        ds.SharedFunctionalGroupsSequence[0],
        original.SharedFunctionalGroupsSequence[0],
    )
    assert shared.PixelMeasuresSequence == before.PixelMeasuresSequence
    frame = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
    assert frame == original.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
    assert ds.DimensionOrganizationSequence[0].DimensionOrganizationUID != (
        original.DimensionOrganizationSequence[0].DimensionOrganizationUID
    )


def test_different_secrets_give_unrelated_identities() -> None:
    a, b = ct(), ct()
    Deidentifier(SECRET).deidentify(a)
    Deidentifier(SECRET + "-other").deidentify(b)
    for keyword in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert a[keyword].value != b[keyword].value


# -- the options -------------------------------------------------------------------------


def test_dates_shift_by_one_offset_per_patient() -> None:
    patient = "98890234"
    ct_path = next((DICOMDIR_TESTS / "98892001" / "CT2N").iterdir())
    mr_path = next((DICOMDIR_TESTS / "98892003" / "MR1").iterdir())
    ct_ds, mr_ds = pydicom.dcmread(ct_path), pydicom.dcmread(mr_path)
    assert ct_ds.PatientID == mr_ds.PatientID == patient
    before = days_between(mr_ds.StudyDate, ct_ds.StudyDate)
    deid = Deidentifier(SECRET, DeidOptions(shift_dates=True))
    ct_date = ct_ds.StudyDate
    deid.deidentify(ct_ds)
    deid.deidentify(mr_ds)
    assert ct_ds.PatientID == mr_ds.PatientID
    assert days_between(ct_ds.StudyDate, ct_date) == deid.date_offset_days(patient)
    assert days_between(mr_ds.StudyDate, ct_ds.StudyDate) == before
    assert ct_ds.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [i.CodeValue for i in ct_ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107"]


def test_shifted_datetimes_keep_time_and_interval() -> None:
    ds = ct()
    ds.AcquisitionDateTime = "20040119101112.5"
    ds.AcquisitionDate = "20040120"
    ds.StudyTime = "101112"
    deid = Deidentifier(SECRET, DeidOptions(shift_dates=True))
    offset = deid.date_offset_days(ds.PatientID)
    deid.deidentify(ds)
    assert ds.AcquisitionDateTime.endswith("101112.5")
    assert days_between(ds.AcquisitionDateTime[:8], "20040119") == offset
    assert days_between(ds.AcquisitionDate, ds.AcquisitionDateTime[:8]) == 1
    assert ds.StudyTime == "101112"
    assert ds.PatientBirthDate == ""  # not part of the option


def test_malformed_date_is_emptied_with_a_warning() -> None:
    ds = ct()
    ds.add(DataElement(0x00080020, "DA", "2004-01-19", validation_mode=0))
    result = Deidentifier(SECRET, DeidOptions(shift_dates=True)).deidentify(ds)
    assert ds.StudyDate == ""
    assert result.action_for("StudyDate") == "emptied"
    assert any("StudyDate" in w for w in result.warnings)
    assert not any("2004" in w for w in result.warnings)


def test_dates_outside_the_table_are_handled_by_vr() -> None:
    ds = ct()
    ds.add_new(0x00189919, "DT", "20040119101112")  # Instruction Performed DateTime (Z/D)
    ds.add_new(0x0018A002, "DT", "20040119101112")  # Contribution DateTime (X)
    ds.add_new(0x00181203, "DT", "20040119101112")  # Calibration DateTime (Z)
    ds.add_new(0x00404010, "DT", "20040119101112")  # a DT attribute: all go under the option
    Deidentifier(SECRET).deidentify(ds)
    assert "ContributionDateTime" not in ds
    assert all("2004" not in str(e.value) for e in ds.iterall() if e.VR in ("DA", "DT"))


def test_patient_characteristics_option() -> None:
    kept, dropped = ct(), ct()
    Deidentifier(SECRET, DeidOptions(retain_patient_characteristics=True)).deidentify(kept)
    Deidentifier(SECRET).deidentify(dropped)
    original = ct()
    for keyword in ("PatientSex", "PatientAge", "PatientWeight"):
        assert kept[keyword].value == original[keyword].value
        assert not dropped.get(keyword)
    assert "113108" in [i.CodeValue for i in kept.DeidentificationMethodCodeSequence]


def test_clean_descriptors_keeps_safe_text_and_blanks_identifiers() -> None:
    safe, leaky = ct(), ct()
    safe.StudyDescription = "CT ABDOMEN WITH CONTRAST"
    safe.SeriesDescription = "AXIAL 5MM"
    leaky.StudyDescription = "CT for CompressedSamples follow-up"
    leaky.SeriesDescription = "ID 1CT1 axial"
    leaky.ProtocolName = "routine"
    deid = Deidentifier(SECRET, DeidOptions(retain_descriptions=True))
    deid.deidentify(safe)
    result = deid.deidentify(leaky)
    assert safe.StudyDescription == "CT ABDOMEN WITH CONTRAST"
    assert safe.SeriesDescription == "AXIAL 5MM"
    assert leaky.StudyDescription == "" and leaky.SeriesDescription == ""
    assert leaky.ProtocolName == "routine"
    assert result.action_for("StudyDescription") == "blanked"
    assert result.action_for("ProtocolName") == "cleaned"
    assert "113105" in [i.CodeValue for i in safe.DeidentificationMethodCodeSequence]


def test_without_clean_descriptors_descriptions_are_removed() -> None:
    ds = ct()
    ds.SeriesDescription = "AXIAL 5MM"
    ds.ProtocolName = "routine"
    Deidentifier(SECRET).deidentify(ds)
    assert "SeriesDescription" not in ds
    assert ds.ProtocolName == "ANONYMIZED"  # X/D: a dummy keeps type 1 uses valid


# -- risks outside the attributes --------------------------------------------------------


def test_burned_in_annotation_is_warned_about() -> None:
    ds = ct()
    ds.BurnedInAnnotation = "YES"
    result = Deidentifier(SECRET).deidentify(ds)
    assert any("BurnedInAnnotation is YES" in w for w in result.warnings)
    assert not Deidentifier(SECRET).deidentify(ct()).warnings


def test_ultrasound_without_burned_in_flag_is_warned_about() -> None:
    path = get_testdata_file("US1_UNCR.dcm")
    assert path is not None
    ds = pydicom.dcmread(path)
    assert ds.Modality == "US" and "BurnedInAnnotation" not in ds
    result = Deidentifier(SECRET).deidentify(ds)
    assert any("modality US" in w for w in result.warnings)


def test_person_names_and_unknown_attributes_outside_the_table_go() -> None:
    ds = ct()
    ds.add_new(0x00400006, "PN", "Doctor^Who")  # Scheduled Performing Physician (table X)
    ds.add_new(0x0070_0084, "PN", "Doctor^Who")  # Content Creator's Name (table Z/D)
    ds.add_new(0x0018_9937, "LO", "requested series")  # in the table: X
    ds.add_new(0x0009_1001, "LO", "private")  # private
    ds.add_new(0x0019_0010, "LO", "PRIVATE CREATOR")
    ds.add_new(0x0051_0000, "UL", 4)  # private group length
    ds.add_new(0x0023_0001, "UN", b"abcd")
    ds.add_new(0x0008_0000, "UL", 1234)  # stale group length
    ds.add_new(0x6000_3000, "OW", b"\x00\x01" * 8)  # overlay data
    ds.add_new(0x6000_0010, "US", 4)  # overlay rows
    ds.add_new(0x5000_0005, "US", 2)  # curve dimensions
    ds.add_new(0x0041_1001, "UN", b"x" * 4)
    ds.add_new(0x0010_0046, "UN", b"new attribute")  # in the 2026c table, unknown to pydicom
    result = Deidentifier(SECRET).deidentify(ds)
    assert "ScheduledPerformingPhysicianName" not in ds
    assert ds.ContentCreatorName == "ANONYMIZED"
    assert "Doctor" not in str(ds)
    for tag in (0x00091001, 0x00190010, 0x00510000, 0x00080000, 0x60003000, 0x60000010):
        assert tag not in ds
    assert 0x50000005 not in ds and 0x00100046 not in ds
    assert result.actions["OverlayData"] == {"removed": 2}
    assert result.actions["CurveData"] == {"removed": 1}
    assert pydicom.dcmread(io.BytesIO(written(ds))).PatientIdentityRemoved == "YES"


def test_deidentify_without_file_meta_and_with_empty_patient() -> None:
    ds = ct()
    del ds.file_meta
    del ds.PatientID
    ds.PatientName = ""
    result = Deidentifier(SECRET).deidentify(ds)
    other = ct()
    del other.PatientID
    other.PatientName = ""
    other.StudyInstanceUID = "1.2.3.999"
    assert result.patient_pseudonym != Deidentifier(SECRET).deidentify(other).patient_pseudonym
    assert ds.PatientName == result.patient_pseudonym


def test_original_values_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    # pydicom quotes values that break the VR's rules in its warnings and logs
    ds = ct()
    del ds.PatientID, ds.PatientName  # the study UID identifies the "patient" then
    ds.add(DataElement(0x0020000D, "UI", "1.2.Secretuid", validation_mode=0))
    ds.add(DataElement(0x00280301, "CS", "Secret", validation_mode=0))  # BurnedInAnnotation
    ds.add(DataElement(0x00081030, "LO", "Secretdesc", validation_mode=0))
    data = written(ds)
    reread = pydicom.dcmread(io.BytesIO(data))  # values stay raw until converted
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Deidentifier(SECRET, ALL_OPTIONS).deidentify(reread)
    text = caplog.text + " ".join(str(w.message) for w in caught)
    assert "Secret" not in text
    assert pydicom.config.settings.reading_validation_mode == pydicom.config.WARN
