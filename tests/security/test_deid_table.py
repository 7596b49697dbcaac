"""The PS3.15 Table E.1-1 data, its resolution into operations, and the option columns."""

from __future__ import annotations

import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword

from medlabel.security.deid import DeidOptions, ProfileCode, profile_table
from medlabel.security.deid.plan import Op, build_plan, resolve_code
from medlabel.security.deid.table import (
    CLEAN_DESCRIPTORS,
    PATIENT_CHARACTERISTICS_KEEP,
    modified_dates_tags,
)


def tag(keyword: str) -> int:
    value = tag_for_keyword(keyword)
    assert value is not None, keyword
    return value


# Values of the basic-profile column of PS3.15 Table E.1-1 (2026c).
@pytest.mark.parametrize(
    ("keyword", "code"),
    [
        ("PatientName", "Z"),
        ("PatientID", "Z/D"),
        ("PatientBirthDate", "Z"),
        ("PatientSex", "Z"),
        ("PatientAge", "X"),
        ("OtherPatientIDs", "X"),
        ("AccessionNumber", "Z"),
        ("StudyDate", "Z"),
        ("StudyTime", "Z"),
        ("ContentDate", "Z/D"),
        ("AcquisitionDate", "X/Z"),
        ("AcquisitionDateTime", "X/Z/D"),
        ("SeriesDate", "X/D"),
        ("InstitutionName", "X/Z/D"),
        ("InstitutionAddress", "X"),
        ("ReferringPhysicianName", "Z"),
        ("OperatorsName", "X/Z/D"),
        ("StationName", "X/Z/D"),
        ("ProtocolName", "X/D"),
        ("StudyDescription", "X"),
        ("SeriesDescription", "X"),
        ("StudyInstanceUID", "U"),
        ("SeriesInstanceUID", "U"),
        ("SOPInstanceUID", "U"),
        ("FrameOfReferenceUID", "U"),
        ("ReferencedSOPInstanceUID", "U"),
        ("MediaStorageSOPInstanceUID", "U"),
        ("ReferencedImageSequence", "X/Z/U*"),
        ("SourceImageSequence", "X/Z/U*"),
        ("ReferencedStudySequence", "X/Z"),
        ("ContentSequence", "D"),
        ("IconImageSequence", "X"),
        ("DataSetTrailingPadding", "X"),
    ],
)
def test_table_matches_the_standard(keyword: str, code: str) -> None:
    assert profile_table()[tag(keyword)].value == code


def test_table_is_the_whole_standard_table() -> None:
    table = profile_table()
    assert len(table) > 600  # Table E.1-1 has ~650 rows with fixed tags
    assert all(isinstance(code, ProfileCode) for code in table.values())
    # Pixel data and geometry are not identifying and not in the table.
    for keyword in ("PixelData", "ImagePositionPatient", "PixelSpacing", "Rows", "Modality"):
        assert tag(keyword) not in table


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        profile_table()[0x00100010] = ProfileCode.X  # type: ignore[index]


@pytest.mark.parametrize(
    ("code", "vr", "op"),
    [
        (ProfileCode.X, "LO", Op.REMOVE),
        (ProfileCode.Z, "PN", Op.EMPTY),
        (ProfileCode.D, "LO", Op.DUMMY),
        (ProfileCode.U, "UI", Op.UID),
        (ProfileCode.Z_D, "DA", Op.DUMMY),
        (ProfileCode.X_Z, "DA", Op.EMPTY),
        (ProfileCode.X_D, "SH", Op.DUMMY),
        (ProfileCode.X_Z_D, "LO", Op.DUMMY),
        (ProfileCode.X_Z_D, "SQ", Op.EMPTY),
        (ProfileCode.X_Z_U, "SQ", Op.RECURSE),
        (ProfileCode.X_Z_U, None, Op.EMPTY),
    ],
)
def test_combined_codes_resolve_conservatively(code: ProfileCode, vr: str | None, op: Op) -> None:
    assert resolve_code(code, vr) is op


def test_option_columns_only_touch_table_attributes() -> None:
    table = profile_table()
    assert table.keys() >= PATIENT_CHARACTERISTICS_KEEP
    missing = {hex(t) for t in CLEAN_DESCRIPTORS if t not in table}
    assert not missing


def test_modified_dates_column_is_dates_but_not_birth() -> None:
    tags = modified_dates_tags()
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDateTime", "StudyTime"):
        assert tag(keyword) in tags
    assert tag("TimezoneOffsetFromUTC") in tags
    assert tag("PatientBirthDate") not in tags
    assert tag("PatientBirthTime") not in tags
    assert all(
        dictionary_VR(t) in ("DA", "DT", "TM") for t in tags if t != tag("TimezoneOffsetFromUTC")
    )


def test_plan_without_options_follows_the_basic_profile() -> None:
    plan = build_plan(DeidOptions())
    assert plan[tag("PatientName")] is Op.PSEUDONYM
    assert plan[tag("PatientID")] is Op.PSEUDONYM
    assert plan[tag("StudyDate")] is Op.EMPTY
    assert plan[tag("PatientAge")] is Op.REMOVE
    assert plan[tag("StudyDescription")] is Op.REMOVE


def test_plan_options_override_the_profile() -> None:
    plan = build_plan(
        DeidOptions(shift_dates=True, retain_patient_characteristics=True, retain_descriptions=True)
    )
    assert plan[tag("StudyDate")] is Op.DATE
    assert plan[tag("PatientBirthDate")] is Op.EMPTY
    assert plan[tag("PatientAge")] is Op.KEEP
    assert plan[tag("PatientSex")] is Op.KEEP
    assert plan[tag("Allergies")] is Op.CLEAN
    assert plan[tag("StudyDescription")] is Op.CLEAN
    assert plan[tag("SeriesDescription")] is Op.CLEAN
    assert plan[tag("ProtocolName")] is Op.CLEAN
    assert plan[tag("InstitutionName")] is Op.DUMMY  # no institution option


def test_options_are_frozen_and_strict() -> None:
    options = DeidOptions()
    with pytest.raises(ValueError):
        options.shift_dates = True  # type: ignore[misc]
    with pytest.raises(ValueError):
        DeidOptions(keep_everything=True)  # type: ignore[call-arg]
