"""The commit: one short transaction that stores what staging prepared."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from medlabel.io import dicom as dicom_io
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.services.access import Principal
from medlabel.services.blobrefs import unit_of_work
from medlabel.services.imports.model import Run
from medlabel.storage.db.models import Image, ImportRecord, Instance, Series, Study


def _unique_name(s: Session, project_id: int, name: str, taken: set[str]) -> str:
    name = name[:240] or "image"
    candidate, n = name, 1
    while candidate in taken or s.scalar(
        select(Image.id).where(Image.project_id == project_id, Image.name == candidate)
    ):
        n += 1
        candidate = f"{name} ({n})"
    taken.add(candidate)
    return candidate


def _new_study(project_id: int, info: dicom_io.SeriesInfo) -> Study:
    return Study(
        project_id=project_id,
        study_uid=info.study_uid,
        patient_pseudonym=info.patient_id or "",
        study_date=info.study_date or None,
        description=(info.study_description or "")[:200],
    )


def _new_series(project_id: int, study_id: int, info: dicom_io.SeriesInfo) -> Series:
    return Series(
        project_id=project_id,
        study_id=study_id,
        series_uid=info.series_uid,
        modality=info.modality or "OT",
        series_number=info.series_number,
        description=(info.series_description or "")[:200],
        frame_of_reference_uid=info.frame_of_reference_uid,
    )


def _series_row(
    s: Session,
    project_id: int,
    info: dicom_io.SeriesInfo,
    studies: dict[str, Study],
    series_rows: dict[str, Series],
) -> Series:
    study = studies.get(info.study_uid) or s.scalar(
        select(Study).where(Study.project_id == project_id, Study.study_uid == info.study_uid)
    )
    if study is None:
        study = _new_study(project_id, info)
        s.add(study)
        s.flush()
    studies[info.study_uid] = study
    series = series_rows.get(info.series_uid) or s.scalar(
        select(Series).where(Series.project_id == project_id, Series.series_uid == info.series_uid)
    )
    if series is None:
        series = _new_series(project_id, study.id, info)
        s.add(series)
        s.flush()
    series_rows[info.series_uid] = series
    return series


def commit(run: Run, actor: Principal | None) -> tuple[ImportRecord, list[int]]:
    """Insert the staged images, their series and instances, the instances of a
    background import that await their images, and the import record."""
    with unit_of_work(run.ctx.db, run.ctx.blobs, run.blobs) as (s, _):
        report: dict[str, Any] = {"problems": [p.__dict__ for p in run.problems[:1000]]}
        if run.report.to_dict().get("instances"):
            report["deidentification"] = run.report.to_dict()
        record = ImportRecord(
            project_id=run.project.id,
            user_id=actor.id if actor else None,
            counts=dict(run.counts),
            report=report,
        )
        s.add(record)
        s.flush()
        rows = SeriesRows()
        infos = [st.series for st in run.staged if st.series is not None]
        rows.prefetch(s, run.project.id, infos + [p.series for p in run.pending if p.series])
        image_ids = add_images(s, run, record.id, rows)
        if run.pending:
            _add_pending(s, run, record.id, rows)
            record.status = "preparing"
        record.counts = dict(run.counts, images=len(image_ids))
        audit.record(
            s,
            actor,
            AuditAction.IMAGE_IMPORT,
            target_type="import",
            target_id=record.id,
            project_id=run.project.id,
            details={k: int(v) for k, v in record.counts.items()},  # counts only, no names
        )
    return record, image_ids


class SeriesRows:
    """Study and series rows found or made during one commit, by UID."""

    def __init__(self) -> None:
        self.studies: dict[str, Study] = {}
        self.series: dict[str, Series] = {}

    def prefetch(self, s: Session, project_id: int, infos: list[dicom_io.SeriesInfo]) -> None:
        """Find or make the rows of many series at once (a query per 500 UIDs and one
        insert per table, not a round trip per series)."""
        study_uids = sorted({i.study_uid for i in infos} - set(self.studies))
        series_uids = sorted({i.series_uid for i in infos} - set(self.series))
        for i in range(0, len(study_uids), 500):
            found = s.scalars(
                select(Study).where(
                    Study.project_id == project_id, Study.study_uid.in_(study_uids[i : i + 500])
                )
            )
            self.studies.update((row.study_uid, row) for row in found)
        for i in range(0, len(series_uids), 500):
            found_series = s.scalars(
                select(Series).where(
                    Series.project_id == project_id,
                    Series.series_uid.in_(series_uids[i : i + 500]),
                )
            )
            self.series.update((row.series_uid, row) for row in found_series)
        new_studies: dict[str, Study] = {}
        for info in infos:
            if info.study_uid not in self.studies and info.study_uid not in new_studies:
                new_studies[info.study_uid] = _new_study(project_id, info)
        s.add_all(new_studies.values())
        s.flush()
        self.studies.update(new_studies)
        new_series: dict[str, Series] = {}
        for info in infos:
            if info.series_uid not in self.series and info.series_uid not in new_series:
                study_id = self.studies[info.study_uid].id
                new_series[info.series_uid] = _new_series(project_id, study_id, info)
        s.add_all(new_series.values())
        s.flush()
        self.series.update(new_series)

    def get(self, s: Session, project_id: int, info: dicom_io.SeriesInfo) -> Series:
        return _series_row(s, project_id, info, self.studies, self.series)


def add_images(
    s: Session, run: Run, record_id: int, rows: SeriesRows, *, instances_stored: bool = False
) -> list[int]:
    """Insert ``run.staged`` as images of the import ``record_id``; their instances are
    inserted, or (``instances_stored``: a background import's) updated to point at them.
    Returns the new image ids."""
    image_ids: list[int] = []
    taken: set[str] = set()
    for st in run.staged:
        series_id = None
        if st.series is not None:
            series_id = rows.get(s, run.project.id, st.series).id
        image = Image(
            project_id=run.project.id,
            series_id=series_id,
            import_id=record_id,
            name=_unique_name(s, run.project.id, st.name, taken),
            source_format=st.source_format,
            modality=st.modality,
            shape=st.shape,
            channels=st.channels,
            dtype=st.dtype,
            affine=st.affine,
            geometry_known=st.geometry_known,
            pixel_digest=st.pixel_digest,
            pixel_bytes=st.pixel_bytes,
            thumbnail_digest=st.thumbnail_digest,
            window_center=st.window.center if st.window else None,
            window_width=st.window.width if st.window else None,
            meta=st.volume_meta,
            plane_sources=st.plane_sources,
        )
        s.add(image)
        s.flush()
        image_ids.append(image.id)
        if not st.instances:
            continue
        if instances_stored:
            for inst in st.instances:
                s.execute(
                    update(Instance)
                    .where(Instance.project_id == run.project.id, Instance.sop_uid == inst.sop_uid)
                    .values(image_id=image.id, first_plane=inst.first_plane,
                            frames=inst.frames, pixel_sha=inst.pixel_sha)
                )  # fmt: skip
        else:  # one multi-row INSERT, not an ORM object per instance
            rows_ = [
                {"project_id": run.project.id, "series_id": series_id,
                 "image_id": image.id, "import_id": record_id, **inst.__dict__}
                for inst in st.instances
            ]  # fmt: skip
            s.execute(insert(Instance), rows_)
    return image_ids


def _add_pending(s: Session, run: Run, record_id: int, rows: SeriesRows) -> None:
    """A background import's stored instances, without images yet."""
    values = []
    for prep in run.pending:
        assert prep.series is not None
        values.append(
            {
                "project_id": run.project.id,
                "series_id": rows.get(s, run.project.id, prep.series).id,
                "image_id": None,
                "import_id": record_id,
                "sop_uid": prep.sop_uid,
                "sop_class_uid": prep.sop_class_uid,
                "instance_number": prep.instance_number,
                "frames": prep.frame_count,
                "dicom_digest": prep.dicom_digest,
                "pixel_sha": "",  # known once decoded
            }
        )
    for i in range(0, len(values), 500):
        s.execute(insert(Instance), values[i : i + 500])
