"""The per-file work of an import (``services/imports/worker.py``)."""

from __future__ import annotations

import pydicom

from medlabel.services.imports.worker import ensure_frame_of_reference


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
