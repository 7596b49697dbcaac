"""The per-file work of an import (``services/imports/worker.py``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medlabel.security.deid import Deidentifier, DeidOptions
from medlabel.services.imports.worker import (
    DicomTask,
    Mode,
    ensure_frame_of_reference,
    prepare_dicom,
    warm_up,
)
from medlabel.storage.blob.local import LocalBlobStore

SECRET = "project-secret-0123456789"


def test_a_missing_frame_of_reference_is_one_per_series() -> None:
    """Located images without a Frame of Reference UID get one derived from their
    series: the same for every instance of a series (and on every import), another for
    another series; images that have one keep it."""

    def located(series: str) -> pydicom.Dataset:
        ds = pydicom.Dataset()
        ds.SeriesInstanceUID = series
        ds.ImagePositionPatient = [0, 0, 0]
        return ds

    a1, a2, b = located("1.2.3.4"), located("1.2.3.4"), located("1.2.3.5")
    assert all(ensure_frame_of_reference(ds) for ds in (a1, a2, b))
    assert a1.FrameOfReferenceUID == a2.FrameOfReferenceUID != b.FrameOfReferenceUID
    uid = str(a1.FrameOfReferenceUID)
    assert uid.startswith("2.25.") and len(uid) <= 64 and uid[5:].isdigit()
    kept = located("1.2.3.4")
    kept.FrameOfReferenceUID = "1.2.9"
    assert not ensure_frame_of_reference(kept) and kept.FrameOfReferenceUID == "1.2.9"
    unlocated = pydicom.Dataset()
    unlocated.SeriesInstanceUID = "1.2.3.4"
    assert not ensure_frame_of_reference(unlocated) and "FrameOfReferenceUID" not in unlocated


@pytest.mark.parametrize("mode", [Mode.FULL, Mode.INGEST])
@pytest.mark.parametrize("name", ["CT_small.dcm", "JPEG2000.dcm", "MR_small_implicit.dcm"])
def test_the_fast_path_prepares_what_the_data_set_path_prepares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, mode: Mode
) -> None:
    """A file de-identified from its encoded elements (or declined, as the implicit VR
    one) gives the same stored file, report and instance as through a pydicom data set."""
    blobs = LocalBlobStore(tmp_path / "blobs")
    deid = (SECRET, json.dumps(DeidOptions().model_dump()))
    source = Path(get_testdata_file(name))

    def prepared(folder: str) -> tuple[object, ...]:
        (tmp_path / folder).mkdir()
        out = prepare_dicom(DicomTask(source, name, tmp_path / folder / "0", deid, blobs, mode))
        assert out.error is None and out.dicom_digest
        frames = None if out.frames_path is None else np.load(out.frames_path).tobytes()
        identity = (out.sop_uid, out.series_uid, out.series, out.instance_number)
        made = (out.dicom_digest, out.deid, out.content_key, out.frame_of_reference_added)
        return identity, made, frames

    taken = Deidentifier(SECRET).deidentify_file(source.read_bytes()) is not None
    assert taken == (name != "MR_small_implicit.dcm")
    fast = prepared("fast")
    monkeypatch.setattr(Deidentifier, "deidentify_file", lambda self, data: None)
    assert prepared("dataset") == fast


def test_worker_warm_up_runs_the_whole_first_stage(caplog: pytest.LogCaptureFixture) -> None:
    """Each import worker process starts by de-identifying and checking pydicom's
    CT_small.dcm (so the first real files do not pay for loading tables and modules);
    it must get through without a failure, which it would only log."""
    with caplog.at_level(logging.DEBUG, logger="medlabel.services.imports.worker"):
        warm_up()
    assert not [r for r in caplog.records if "warm-up failed" in r.getMessage()]
