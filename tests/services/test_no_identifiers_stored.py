"""Original patient identifiers never reach the database, the blob store or the logs."""

from __future__ import annotations

import logging
import sqlite3
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from sqlalchemy import inspect, text

from medlabel.security.deid import DeidOptions
from medlabel.services.context import Context
from medlabel.services.imports import ImportOptions, import_paths
from medlabel.services.projects import create_project
from tests.conftest import sample_file

FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "RG1_UNCR.dcm",
    "US1_J2KR.dcm",
    "emri_small.dcm",
    "eCT_Supplemental.dcm",
    "693_UNCR.dcm",
]

KEYWORDS = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "AccessionNumber",
    "OperatorsName",
    "StudyID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "StationName",
    "PerformingPhysicianName",
]


def _identifiers(paths: list[Path]) -> set[str]:
    found: set[str] = set()
    kept: set[str] = set()  # values the profile keeps (MR_small's institution is "TOSHIBA",
    # which is also its manufacturer)
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        kept.update(str(ds.get(k, "")) for k in ("Manufacturer", "ManufacturerModelName"))
        for kw in KEYWORDS:
            value = ds.get(kw)
            if value is None:
                continue
            text = str(value)
            # person names also by component; other values whole ("Philips Medical Systems
            # Hamburg" is an institution, while "Philips Medical Systems" is a kept
            # manufacturer)
            is_person = ds.data_element(kw).VR == "PN"
            parts = [text] + (text.replace("^", " ").split() if is_person else [])
            # distinctive values only: "000000000" also occurs in any pixel array
            found.update(p for p in parts if len(p) >= 6 and len(set(p)) >= 4)
    return {f for f in found if not any(f in k for k in kept)}


def _database_bytes(ctx: Context) -> bytes:
    """Everything the database holds: on SQLite every byte of the file (WAL checkpointed,
    so freed pages count too); on a server every row of every table, as text."""
    if not ctx.db.is_sqlite:
        with ctx.db.read() as s:
            tables = inspect(s.connection()).get_table_names()
            rows = [s.execute(text(f'SELECT t::text FROM "{t}" t')).scalars() for t in tables]
            return "\n".join(r for table in rows for r in table).encode()
    db_file = ctx.settings.home / "medlabel.db"
    ctx.db.dispose()
    with sqlite3.connect(db_file) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db_file.read_bytes()


@pytest.mark.parametrize("shift_dates", [False, True])
def test_identifiers_are_nowhere(
    ctx: Context, caplog: pytest.LogCaptureFixture, shift_dates: bool
) -> None:
    paths = [sample_file(f) for f in FILES]
    secrets = _identifiers(paths)
    assert len(secrets) > 20  # the check below means something
    project = create_project(ctx, None, "P", deid_options=DeidOptions(shift_dates=shift_dates))
    with caplog.at_level(logging.DEBUG):
        summary = import_paths(ctx, None, project.id, paths)
    assert len(summary.image_ids) == len(FILES)

    blobs = [_database_bytes(ctx)]
    blobs += [ctx.blobs.read_bytes(d) for d in ctx.blobs.iter_digests()]
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for secret in sorted(secrets):
        needle = secret.encode()
        for data in blobs:
            assert needle not in data, f"{secret!r} stored"
        assert secret not in logs, f"{secret!r} logged"


@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_malformed_identifiers_are_not_logged_while_read(
    ctx: Context,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    background: bool,
    syntax: str,
) -> None:
    """pydicom's value validation quotes the value it warns about: an invalid UID (here
    one that spells a name) must not reach the logs or warnings while the file is read
    and checked, before it is de-identified (from its encoded elements, or, implicit VR,
    as a pydicom data set)."""
    from pydicom import config

    secret = "SMITH.JOHN.19700101"
    ds = pydicom.dcmread(sample_file("CT_small.dcm"))
    with config.disable_value_validation():
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = secret
        ds.StudyInstanceUID = secret + ".STUDY"
    ds.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / "bad_uid.dcm"
    ds.save_as(path, enforce_file_format=True)
    project = create_project(ctx, None, "P")
    caplog.clear()  # pydicom's own warning on writing the file above
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = import_paths(
            ctx, None, project.id, [path], options=ImportOptions(background=background)
        )
    assert summary.counts["instances"] == 1
    said = [r.getMessage() for r in caplog.records] + [str(w.message) for w in caught]
    assert not [text for text in said if "SMITH" in text]
