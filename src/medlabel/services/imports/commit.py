"""The commit: one short transaction that stores what staging prepared."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
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
        study = Study(
            project_id=project_id,
            study_uid=info.study_uid,
            patient_pseudonym=info.patient_id or "",
            study_date=info.study_date or None,
            description=(info.study_description or "")[:200],
        )
        s.add(study)
        s.flush()
    studies[info.study_uid] = study
    series = series_rows.get(info.series_uid) or s.scalar(
        select(Series).where(Series.project_id == project_id, Series.series_uid == info.series_uid)
    )
    if series is None:
        series = Series(
            project_id=project_id,
            study_id=study.id,
            series_uid=info.series_uid,
            modality=info.modality or "OT",
            series_number=info.series_number,
            description=(info.series_description or "")[:200],
            frame_of_reference_uid=info.frame_of_reference_uid,
        )
        s.add(series)
        s.flush()
    series_rows[info.series_uid] = series
    return series


def commit(run: Run, actor: Principal | None) -> tuple[ImportRecord, list[int]]:
    """Insert the staged images, their series and instances, and the import record."""
    image_ids: list[int] = []
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
        taken: set[str] = set()
        studies: dict[str, Study] = {}
        series_rows: dict[str, Series] = {}
        for st in run.staged:
            series_id = None
            if st.series is not None:
                series_id = _series_row(s, run.project.id, st.series, studies, series_rows).id
            image = Image(
                project_id=run.project.id,
                series_id=series_id,
                import_id=record.id,
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
            if st.instances:  # one multi-row INSERT, not an ORM object per instance
                rows = [
                    {"project_id": run.project.id, "series_id": series_id,
                     "image_id": image.id, **inst.__dict__}
                    for inst in st.instances
                ]  # fmt: skip
                s.execute(insert(Instance), rows)
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
