"""Exporting a project's annotations: NIfTI, DICOM SEG, COCO, CSV, nnU-Net v2.

One item per image: with ``which=latest`` the head revision of the image's most
recently saved annotation, with ``which=approved`` its most recently approved revision
(images without one are left out). Every export writes ``manifest.json`` naming each
exported revision and author, and what was skipped and why.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from medlabel import __version__
from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import AnnotationKind, LabelKind, RevisionSource
from medlabel.core.errors import ConflictError, InvalidInputError, NotFoundError
from medlabel.core.ids import utcnow
from medlabel.imaging.volume import Volume
from medlabel.io.arrays import decode_array
from medlabel.io.coco import write_coco
from medlabel.io.exportitem import ExportItem, LabelInfo, unique_stems
from medlabel.io.nifti import write_nifti
from medlabel.io.nnunet import write_nnunet
from medlabel.io.seg import write_dicom_seg
from medlabel.io.tables import write_annotations_csv, write_shapes_csv
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, require_project
from medlabel.services.context import Context
from medlabel.storage.db.models import (
    Annotation,
    Export,
    Image,
    Instance,
    Label,
    Project,
    Revision,
    User,
)

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]


class ExportFormat(StrEnum):
    NIFTI = "nifti"
    DICOM_SEG = "dicom-seg"
    COCO = "coco"
    CSV = "csv"
    NNUNET = "nnunet"


class Which(StrEnum):
    """Which revision of each image to export."""

    LATEST = "latest"
    APPROVED = "approved"


class ExportRequest(BaseModel):
    """What to export (the body of an export request, the parameters of an export job)."""

    format: ExportFormat
    which: Which = Which.LATEST
    image_ids: list[int] | None = Field(default=None, max_length=100_000)
    include_images: bool = Field(default=True, description="NIfTI: also write the images.")
    dataset_id: int = Field(default=1, ge=1, le=999, description="nnU-Net dataset id.")

    def options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`write_export` (and the functions calling it)."""
        return {
            "which": self.which,
            "image_ids": self.image_ids,
            "include_images": self.include_images,
            "dataset_id": self.dataset_id,
        }


@dataclass
class ExportSummary:
    format: ExportFormat
    which: Which
    exported: int
    skipped: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format.value,
            "which": self.which.value,
            "exported": self.exported,
            "skipped": self.skipped,
            "files": self.files[:10_000],
            "details": self.details,
        }


def label_infos(labels: Sequence[Label]) -> list[LabelInfo]:
    """The project's labels as the writers take them."""
    out = []
    for lab in labels:
        code = None
        if lab.code_value and lab.code_scheme and lab.code_meaning:
            code = (lab.code_value, lab.code_scheme, lab.code_meaning)
        out.append(LabelInfo(lab.name, LabelKind(lab.kind), lab.value, lab.color, code=code))
    return out


def _source(rev: Revision) -> str:
    if rev.source == RevisionSource.ENGINE.value:
        return f"engine:{rev.engine_name}@{rev.engine_version}"
    return rev.source


def _chosen_revisions(
    ctx: Context, project_id: int, which: Which, image_ids: Sequence[int] | None
) -> list[tuple[Image, Revision, str | None]]:
    with ctx.db.read() as s:
        stmt = select(Annotation).where(Annotation.project_id == project_id)
        if image_ids is not None:
            stmt = stmt.where(Annotation.image_id.in_(list(image_ids)))
        # an image's consensus wins over its readers; among readers, the latest saved
        best: dict[int, tuple[Annotation, int]] = {}
        for ann in s.scalars(stmt.order_by(Annotation.updated_at)):
            rev_id = ann.approved_revision_id if which == Which.APPROVED else ann.head_revision_id
            held = best.get(ann.image_id)
            if rev_id is None or (
                held is not None
                and held[0].kind == AnnotationKind.CONSENSUS.value
                and ann.kind != AnnotationKind.CONSENSUS.value
            ):
                continue
            best[ann.image_id] = (ann, rev_id)
        out = []
        for image_id in sorted(best):
            _, rev_id = best[image_id]
            image = s.get(Image, image_id)
            rev = s.get(Revision, rev_id)
            assert image is not None and rev is not None
            author = s.get(User, rev.author_id) if rev.author_id else None
            out.append((image, rev, author.username if author else None))
        return out


def check_exportable(
    ctx: Context, project_id: int, which: Which | str, image_ids: Sequence[int] | None = None
) -> None:
    """Raise :class:`InvalidInputError` early when the project has nothing to export
    (the same message :func:`write_export` would give, without reading any pixels)."""
    which = Which(which)
    column = (
        Annotation.approved_revision_id if which == Which.APPROVED else Annotation.head_revision_id
    )
    with ctx.db.read() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise NotFoundError(f"project {project_id} not found")
        stmt = select(func.count()).where(Annotation.project_id == project_id, column.is_not(None))
        if image_ids is not None:
            stmt = stmt.where(Annotation.image_id.in_(list(image_ids)))
        if not s.scalar(stmt):
            raise InvalidInputError(
                f"project {project.name!r} has no "
                f"{'approved ' if which == Which.APPROVED else ''}annotations to export"
            )


def _dicom_sources(
    ctx: Context, image: Image
) -> tuple[list[pydicom.FileDataset], list[tuple[int, int]]] | tuple[None, None]:
    if not image.plane_sources:
        return None, None
    with ctx.db.read() as s:
        rows = list(
            s.execute(
                select(Instance.sop_uid, Instance.dicom_digest)
                .where(Instance.image_id == image.id)
                .order_by(Instance.first_plane)
            )
        )
    datasets = [
        pydicom.dcmread(io.BytesIO(ctx.blobs.read_bytes(d)), stop_before_pixels=True)
        for _, d in rows
    ]
    index = {uid: i for i, (uid, _) in enumerate(rows)}
    planes = [(index[uid], int(frame)) for uid, frame in image.plane_sources]
    return datasets, planes


def build_item(
    ctx: Context, image: Image, rev: Revision, author: str | None, *, with_sources: bool
) -> ExportItem:
    """An :class:`ExportItem` for one image and revision."""
    meta = dict(image.meta or {})
    if image.window_center is not None and image.window_width is not None:
        meta.update(window_center=image.window_center, window_width=image.window_width)
    volume = Volume(
        np.asarray(ctx.volumes.get(image.pixel_digest)),
        np.asarray(image.affine),
        modality=image.modality,
        geometry_known=image.geometry_known,
        metadata=meta,
    )
    mask = decode_array(ctx.blobs.read_bytes(rev.mask_digest)) if rev.mask_digest else None
    datasets, planes = _dicom_sources(ctx, image) if with_sources else (None, None)
    return ExportItem(
        image_id=image.id,
        name=image.name,
        volume=volume,
        mask=mask,
        content=AnnotationContent.model_validate(rev.content),
        annotation_id=rev.annotation_id,
        revision_id=rev.id,
        author=author,
        source=_source(rev),
        source_datasets=datasets,
        planes=planes,
    )


def _dataset_name(project_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "", project_name.replace(" ", "_"))[:60] or "medlabel"


def write_export(
    ctx: Context,
    actor: Principal | None,
    project_id: int,
    fmt: ExportFormat | str,
    out_dir: Path,
    *,
    which: Which | str = Which.LATEST,
    image_ids: Sequence[int] | None = None,
    include_images: bool = True,
    dataset_id: int = 1,
    progress: ProgressFn | None = None,
) -> ExportSummary:
    """Write an export into ``out_dir`` (created; must be empty if it exists) without
    recording it; see :func:`export_to_dir` and :func:`export_archive`.

    Raises
    ------
    InvalidInputError
        Unknown format, or nothing to export (no annotations, or none the format can
        hold).
    ConflictError
        ``out_dir`` exists and is not empty.
    """
    try:
        fmt = ExportFormat(fmt)
        which = Which(which)
    except ValueError as exc:
        raise InvalidInputError(
            f"{exc}; formats: {[f.value for f in ExportFormat]}, revisions: "
            f"{[w.value for w in Which]}"
        ) from None
    with ctx.db.read() as s:
        if actor is not None:
            project = require_project(s, actor, project_id, ProjectRole.REVIEWER)
        else:
            found = s.get(Project, project_id)
            if found is None:
                raise NotFoundError(f"project {project_id} not found")
            project = found
        labels = label_infos(list(s.scalars(select(Label).where(Label.project_id == project_id))))
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConflictError(f"{out_dir} is not empty; choose a new folder")
    chosen = _chosen_revisions(ctx, project_id, which, image_ids)
    if not chosen:
        raise InvalidInputError(
            f"project {project.name!r} has no {'approved ' if which == Which.APPROVED else ''}"
            "annotations to export"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(fmt, which, 0)
    items: list[ExportItem] = []
    for n, (image, rev, author) in enumerate(chosen, 1):
        reason = _unsuitable(fmt, image, rev)
        if reason:
            summary.skipped.append({"image_id": image.id, "name": image.name, "reason": reason})
        else:
            items.append(
                build_item(ctx, image, rev, author, with_sources=fmt == ExportFormat.DICOM_SEG)
            )
        if progress:
            progress("collecting", n, len(chosen))
    if not items:
        reasons = "; ".join(f"{x['name']}: {x['reason']}" for x in summary.skipped[:5])
        raise InvalidInputError(
            f"nothing in this project can be exported as {fmt.value} ({reasons})"
        )
    try:
        _WRITERS[fmt](
            items,
            labels,
            out_dir,
            summary,
            include_images=include_images,
            dataset_id=dataset_id,
            dataset_name=_dataset_name(project.name),
            progress=progress,
        )
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    summary.exported = len(items)
    manifest = {
        "medlabel_version": __version__,
        "project": {"id": project.id, "name": project.name},
        "created_at": utcnow().isoformat(),
        **summary.to_dict(),
        "labels": [
            {
                "name": lab.name,
                "kind": lab.kind.value,
                "value": lab.value,
                "color": lab.color,
                "code": list(lab.code) if lab.code else None,
            }
            for lab in labels
        ],
        "items": [
            {
                "image_id": it.image_id,
                "name": it.name,
                "annotation_id": it.annotation_id,
                "revision_id": it.revision_id,
                "author": it.author,
                "source": it.source,
            }
            for it in items
        ],
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return summary


def _record(
    ctx: Context,
    actor: Principal | None,
    project_id: int,
    summary: ExportSummary,
    digest: str | None = None,
    size: int | None = None,
) -> Export:
    with ctx.db.write() as s:
        row = Export(
            project_id=project_id,
            user_id=actor.id if actor else None,
            format=summary.format.value,
            options={"which": summary.which.value},
            summary=summary.to_dict(),
            digest=digest,
            size=size,
        )
        s.add(row)
        s.flush()
        audit.record(
            s,
            actor,
            AuditAction.EXPORT_CREATE,
            target_type="export",
            target_id=row.id,
            project_id=project_id,
            details={"format": row.format, "images": summary.exported, "bytes": size},
        )
    return row


def export_to_dir(
    ctx: Context,
    actor: Principal | None,
    project_id: int,
    fmt: ExportFormat | str,
    out_dir: Path,
    **options: Any,
) -> ExportSummary:
    """Write an export into a folder (the CLI's way) and record that it happened."""
    summary = write_export(ctx, actor, project_id, fmt, out_dir, **options)
    _record(ctx, actor, project_id, summary)
    return summary


def export_archive(
    ctx: Context, actor: Principal | None, project_id: int, fmt: ExportFormat | str, **options: Any
) -> Export:
    """Write an export, zip it into the blob store and record it (the API's and the
    ``export`` job's way; ``actor`` None: the machine's operator)."""
    tmp_root = ctx.settings.home / "tmp"
    tmp_root.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="export-", dir=tmp_root))
    try:
        summary = write_export(ctx, actor, project_id, fmt, work / "export", **options)
        archive = work / "export.zip"
        progress: ProgressFn | None = options.get("progress")
        files = [p for p in sorted((work / "export").rglob("*")) if p.is_file()]
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for n, path in enumerate(files, 1):
                zf.write(path, path.relative_to(work / "export").as_posix())
                if progress:
                    progress("packing", n, len(files))
        with archive.open("rb") as fh:
            ref = ctx.blobs.put_stream(fh)
        ctx.blobs.sync([ref.digest])
        return _record(ctx, actor, project_id, summary, ref.digest, ref.size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def get_export(ctx: Context, actor: Principal, export_id: int) -> Export:
    with ctx.db.read() as s:
        row = s.get(Export, export_id)
        if row is None:
            raise NotFoundError(f"export {export_id} not found")
        require_project(s, actor, row.project_id, ProjectRole.REVIEWER)
        return row


def list_exports(ctx: Context, actor: Principal, project_id: int) -> list[Export]:
    with ctx.db.read() as s:
        require_project(s, actor, project_id, ProjectRole.REVIEWER)
        return list(
            s.scalars(
                select(Export).where(Export.project_id == project_id).order_by(Export.id.desc())
            )
        )


def open_archive(ctx: Context, actor: Principal, export_id: int) -> tuple[Export, Iterator[bytes]]:
    """An export's zip, streamed from the blob store."""
    row = get_export(ctx, actor, export_id)
    if row.digest is None:
        raise NotFoundError(f"export {export_id} was written to a folder and has no archive")
    digest = row.digest
    with ctx.db.write() as s:
        audit.record(
            s,
            actor,
            AuditAction.EXPORT_DOWNLOAD,
            target_type="export",
            target_id=row.id,
            project_id=row.project_id,
            details={"format": row.format, "bytes": row.size},
        )

    def chunks() -> Iterator[bytes]:
        with ctx.blobs.open(digest) as fh:
            while chunk := fh.read(1024 * 1024):
                yield chunk

    return row, chunks()


def _unsuitable(fmt: ExportFormat, image: Image, rev: Revision) -> str | None:
    has_mask = rev.mask_digest is not None
    if fmt in (ExportFormat.NIFTI, ExportFormat.NNUNET) and not has_mask:
        return "no mask"
    if fmt == ExportFormat.DICOM_SEG:
        if not has_mask:
            return "no mask"
        if not image.plane_sources:
            return f"not imported from DICOM ({image.source_format})"
    if fmt == ExportFormat.COCO and image.shape[0] != 1:
        return f"COCO holds 2D images; this one has {image.shape[0]} planes"
    return None


def _write_nifti_dir(
    items: list[ExportItem],
    labels: list[LabelInfo],
    out: Path,
    summary: ExportSummary,
    *,
    include_images: bool,
    progress: ProgressFn | None,
    **_: Any,
) -> None:
    stems = unique_stems(items)
    (out / "labels").mkdir()
    if include_images:
        (out / "images").mkdir()
    for n, it in enumerate(items, 1):
        assert it.mask is not None
        stem = stems[it.image_id]
        mask = it.mask.astype(np.uint8 if it.mask.max(initial=0) < 256 else np.uint16)
        write_nifti(it.volume.with_array(mask), out / "labels" / f"{stem}.nii.gz")
        summary.files.append(f"labels/{stem}.nii.gz")
        if include_images:
            write_nifti(it.volume, out / "images" / f"{stem}.nii.gz")
            summary.files.append(f"images/{stem}.nii.gz")
        if progress:
            progress("writing", n, len(items))
    summary.details["label_values"] = {lab.name: lab.value for lab in labels if lab.value}


def _write_seg_dir(
    items: list[ExportItem],
    labels: list[LabelInfo],
    out: Path,
    summary: ExportSummary,
    *,
    progress: ProgressFn | None,
    **_: Any,
) -> None:
    stems = unique_stems(items)
    for n, it in enumerate(items, 1):
        name = f"{stems[it.image_id]}.seg.dcm"
        write_dicom_seg(it, labels, out / name)
        summary.files.append(name)
        if progress:
            progress("writing", n, len(items))


def _write_coco_dir(
    items: list[ExportItem], labels: list[LabelInfo], out: Path, summary: ExportSummary, **_: Any
) -> None:
    result = write_coco(items, labels, out)
    summary.files.append(str(result.annotations_path.relative_to(out)))
    summary.details.update(
        images=result.images, annotations=result.annotations, categories=result.categories
    )


def _write_csv_dir(
    items: list[ExportItem], labels: list[LabelInfo], out: Path, summary: ExportSummary, **_: Any
) -> None:
    rows = write_annotations_csv(items, out / "annotations.csv")
    shapes = write_shapes_csv(items, out / "shapes.csv")
    summary.files += ["annotations.csv", "shapes.csv"]
    summary.details.update(annotation_rows=rows, shape_rows=shapes)


def _write_nnunet_dir(
    items: list[ExportItem],
    labels: list[LabelInfo],
    out: Path,
    summary: ExportSummary,
    *,
    dataset_id: int,
    dataset_name: str,
    **_: Any,
) -> None:
    result = write_nnunet(items, labels, out, dataset_id=dataset_id, dataset_name=dataset_name)
    summary.files.append(str(result.dataset_dir.relative_to(out)))
    summary.details.update(
        cases=result.cases,
        file_ending=result.file_ending,
        labels=result.labels,
        value_map={str(k): v for k, v in result.value_map.items()},
    )
    summary.skipped += [{"name": n, "reason": "no mask"} for n in result.skipped]


_WRITERS: dict[ExportFormat, Callable[..., None]] = {
    ExportFormat.NIFTI: _write_nifti_dir,
    ExportFormat.DICOM_SEG: _write_seg_dir,
    ExportFormat.COCO: _write_coco_dir,
    ExportFormat.CSV: _write_csv_dir,
    ExportFormat.NNUNET: _write_nnunet_dir,
}
