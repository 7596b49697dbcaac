"""Real DICOM studies (pydicom's ``dicomdirtests`` files) for the PACS tests, and a
helper that puts them into the test Orthanc."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom

from tests.conftest import sample_file
from tests.support.orthanc import Orthanc

#: folders (below dicomdirtests) of three patients' studies: CR, CT and MR
FOLDERS = ("77654033", "98892001", "98892003")


@dataclass(frozen=True)
class StudyFiles:
    """One study of the sample files, with the identifiers the PACS shows."""

    study_uid: str
    patient_id: str
    patient_name: str
    accession: str
    study_date: str
    description: str
    modalities: frozenset[str]
    series_uids: frozenset[str]
    files: tuple[Path, ...]


def sample_studies() -> dict[str, StudyFiles]:
    """Every study of the sample folders, by StudyInstanceUID."""
    root = sample_file("CT_small.dcm").parent / "dicomdirtests"
    by_study: dict[str, list[tuple[Path, pydicom.Dataset]]] = {}
    for folder in FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                by_study.setdefault(str(ds.StudyInstanceUID), []).append((path, ds))
    out = {}
    for uid, members in by_study.items():
        ds = members[0][1]
        out[uid] = StudyFiles(
            study_uid=uid,
            patient_id=str(ds.PatientID),
            patient_name=str(ds.PatientName),
            accession=str(ds.get("AccessionNumber", "")),
            study_date=str(ds.get("StudyDate", "")),
            description=str(ds.get("StudyDescription", "")),
            modalities=frozenset(str(d.Modality) for _, d in members),
            series_uids=frozenset(str(d.SeriesInstanceUID) for _, d in members),
            files=tuple(p for p, _ in members),
        )
    return out


def load(orthanc: Orthanc) -> dict[str, StudyFiles]:
    """Upload every sample study to ``orthanc`` (again: Orthanc answers AlreadyStored)."""
    studies = sample_studies()
    for study in studies.values():
        orthanc.upload(study.files)
    return studies


def ct_study(studies: dict[str, StudyFiles]) -> StudyFiles:
    """The CT study of patient 98890234 (two series: CT2N with 2, CT5N with 5 slices)."""
    return next(s for s in studies.values() if s.modalities == {"CT"} and len(s.files) == 7)
