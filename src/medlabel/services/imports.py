"""Importing files, folders and zips into a project: read → de-identify → store.

The pipeline works in three stages so that a large import neither holds the database's
write lock for long nor keeps all pixels in memory:

1. *scan*: expand folders and zips, sniff every file, read DICOM headers and group
   instances into series;
2. *stage*: per series (or per NIfTI/raster file) read the pixels, de-identify, build
   the volume and write blobs (de-identified DICOM files, the pixel array, a thumbnail);
3. *commit*: one short transaction inserts studies, series, instances, images and the
   import record with its report.

By default any unreadable file fails the whole import and nothing is stored (blobs
written during staging are removed). With ``on_error=skip`` bad files are reported and
the rest is stored.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.orm import Session

from medlabel.core.errors import (
    InvalidInputError,
    MedlabelError,
    NotFoundError,
    TooLargeError,
    UnsupportedFormatError,
)
from medlabel.imaging.render import thumbnail
from medlabel.imaging.volume import Volume
from medlabel.imaging.windowing import CT_PRESETS, Window, auto_window
from medlabel.io import dicom as dicom_io
from medlabel.io.archive import extract_zip
from medlabel.io.arrays import encode_array
from medlabel.io.nifti import read_nifti
from medlabel.io.png import encode_png_fast
from medlabel.io.raster import read_raster
from medlabel.io.sniff import FileKind, iter_files, sniff
from medlabel.security.deid import Deidentifier, DeidOptions, DeidReport
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, require_project
from medlabel.services.blobrefs import BlobTransaction, unit_of_work
from medlabel.services.context import Context
from medlabel.storage.db.models import Image, ImportRecord, Instance, Project, Series, Study

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]


class OnError(StrEnum):
    """What to do with a file that cannot be read."""

    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class ImportOptions:
    """``modality`` applies to NIfTI and raster files, which do not record one."""

    modality: str | None = None
    on_error: OnError = OnError.FAIL


@dataclass
class Problem:
    file: str
    reason: str
    status: int = 422


@dataclass
class ImportSummary:
    import_id: int
    image_ids: list[int]
    counts: dict[str, int]
    problems: list[Problem]
    report: dict[str, Any]


@dataclass
class _Source:
    path: Path
    name: str  # path relative to what the user gave (for messages and non-DICOM names)
    kind: FileKind


@dataclass
class _StagedInstance:
    sop_uid: str
    sop_class_uid: str
    instance_number: int | None
    first_plane: int
    frames: int
    dicom_digest: str
    pixel_sha: str


@dataclass
class _StagedImage:
    name: str
    source_format: str
    volume_meta: dict[str, Any]
    modality: str
    shape: list[int]
    channels: int
    dtype: str
    affine: list[list[float]]
    geometry_known: bool
    pixel_digest: str
    pixel_bytes: int
    thumbnail_digest: str
    window: Window | None
    series: dicom_io.SeriesInfo | None = None
    instances: list[_StagedInstance] = field(default_factory=list)
    plane_sources: list[list[Any]] | None = None


@dataclass
class _Run:
    ctx: Context
    project: Project
    options: ImportOptions
    deid: Deidentifier
    report: DeidReport
    blobs: BlobTransaction
    problems: list[Problem] = field(default_factory=list)
    staged: list[_StagedImage] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {
            "files": 0,
            "instances": 0,
            "images": 0,
            "duplicates": 0,
            "skipped": 0,
            "rejected": 0,
        }
    )

    def problem(self, name: str, reason: str, status: int = 422) -> None:
        if reason.startswith(f"{name}: "):
            reason = reason[len(name) + 2 :]
        self.problems.append(Problem(name, reason, status))
        self.counts["rejected"] += 1


def default_window(volume: Volume) -> Window | None:
    """The window an image opens with: the DICOM file's, CT soft tissue, or the
    0.5–99.5 percentile range; None for colour images."""
    if volume.channels != 1:
        return None
    meta = volume.metadata
    c, w = meta.get("window_center"), meta.get("window_width")
    if c is not None and w is not None and float(w) >= 1:
        return Window(float(c), float(w))
    if volume.modality == "CT":
        return CT_PRESETS["soft_tissue"]
    return auto_window(volume.array)


def _scan(paths: Sequence[Path], workdir: Path, run: _Run) -> list[_Source]:
    """Every file to import, with zips (given, or found in folders) unpacked once."""
    settings = run.ctx.settings
    sources: list[_Source] = []
    zips = 0

    def unpack(archive: Path, name: str) -> None:
        nonlocal zips
        zips += 1
        dest = workdir / f"zip{zips}"
        try:
            extract_zip(
                archive,
                dest,
                max_members=settings.max_archive_members,
                max_total_bytes=settings.max_archive_bytes,
                max_ratio=settings.max_archive_ratio,
            )
        except MedlabelError as exc:
            if run.options.on_error == OnError.FAIL:
                raise
            run.problem(name, exc.message, exc.status_code)
            return
        for path in iter_files([dest]):
            kind = sniff(path)
            member = f"{name}/{path.relative_to(dest)}"
            if kind == FileKind.ZIP:
                run.problem(member, "zip files inside a zip are not unpacked")
            else:
                sources.append(_Source(path, member, kind))

    for given in paths:
        if not given.exists():
            raise InvalidInputError(f"{given}: no such file or folder")
        root = given if given.is_dir() else given.parent
        for path in iter_files([given]):
            kind = sniff(path)
            name = str(path.relative_to(root))
            if kind == FileKind.ZIP:
                unpack(path, name)
            else:
                sources.append(_Source(path, name, kind))
    run.counts["files"] = len(sources)
    return sources


def _content_key(ds: pydicom.Dataset) -> str:
    """Identity of an instance's content: its decoded pixels and where they are. The same
    image sent again under new UIDs, or re-encoded with another transfer syntax, has the
    same key."""
    h = hashlib.sha256()
    for kw in (
        "Rows",
        "Columns",
        "NumberOfFrames",
        "ImagePositionPatient",
        "ImageOrientationPatient",
    ):
        h.update(repr(ds.get(kw)).encode())
    try:
        h.update(np.ascontiguousarray(ds.pixel_array).tobytes())
    except Exception:  # noqa: BLE001 - undecodable pixels were rejected by read_dataset
        h.update(ds.get("PixelData") or b"")
    return h.hexdigest()


def _dicom_bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _put_volume(run: _Run, volume: Volume) -> tuple[str, int, str, Window | None]:
    arr = np.ascontiguousarray(volume.array)
    pixel = run.blobs.put(encode_array(arr))
    window = default_window(volume)
    thumb = run.blobs.put(encode_png_fast(thumbnail(arr, volume.affine, window)))
    return pixel.digest, arr.nbytes, thumb.digest, window


def _staged(run: _Run, volume: Volume, name: str, source_format: str) -> _StagedImage:
    pixel_digest, nbytes, thumb_digest, window = _put_volume(run, volume)
    return _StagedImage(
        name=name,
        source_format=source_format,
        volume_meta=dict(volume.metadata),
        modality=volume.modality,
        shape=list(volume.spatial_shape),
        channels=volume.channels,
        dtype=str(volume.array.dtype),
        affine=volume.affine.tolist(),
        geometry_known=volume.geometry_known,
        pixel_digest=pixel_digest,
        pixel_bytes=nbytes,
        thumbnail_digest=thumb_digest,
        window=window,
    )


def _stage_file(run: _Run, src: _Source) -> None:
    """NIfTI and raster images: one file, one image."""
    settings = run.ctx.settings
    if src.kind == FileKind.NIFTI:
        volume = read_nifti(
            src.path,
            name=src.name,
            modality=run.options.modality or "OT",
            max_voxels=settings.max_voxels,
        )
        name, fmt = _strip_ext(src.name, (".nii.gz", ".nii")), "nifti"
    else:
        volume = read_raster(src.path, name=src.name, max_voxels=settings.max_voxels)
        if run.options.modality:
            volume = volume.with_array(volume.array, modality=run.options.modality)
        name, fmt = _strip_ext(src.name, ()), src.kind.value
    run.staged.append(_staged(run, volume, name, fmt))


def _strip_ext(name: str, exts: tuple[str, ...]) -> str:
    lower = name.lower()
    for ext in exts:
        if lower.endswith(ext):
            return name[: -len(ext)]
    stem, dot, _ = name.rpartition(".")
    return stem if dot and "/" not in name[len(stem) :] else name


def _existing(s: Session, project_id: int, column: Any, values: list[str]) -> set[str]:
    out: set[str] = set()
    for i in range(0, len(values), 500):
        chunk = values[i : i + 500]
        out.update(
            s.scalars(select(column).where(Instance.project_id == project_id, column.in_(chunk)))
        )
    return out


def _dicom_image_name(
    info: dicom_io.SeriesInfo, part: str, instance_number: int | None, single: bool
) -> str:
    bits = [info.patient_id or "", info.modality or "OT"]
    bits.append(f"series {info.series_number}" if info.series_number is not None else "series")
    if info.series_description:
        bits.append(info.series_description)
    name = " ".join(b for b in bits if b)
    if part:
        name += f" [{part}]"
    if not single and instance_number is not None:
        name += f" #{instance_number}"
    return name


def _stage_series(
    run: _Run, items: list[tuple[_Source, pydicom.Dataset]], seen: dict[str, set[str]]
) -> None:
    """One DICOM series: de-identify, drop duplicates, build volumes, write blobs."""
    settings = run.ctx.settings
    kept: list[tuple[str, pydicom.Dataset]] = []
    keys: dict[str, str] = {}
    for src, ds in items:
        result = run.deid.deidentify(ds)
        run.report.add(result)
        _ensure_frame_of_reference(ds, run)
        sop = str(ds.SOPInstanceUID)
        content = _content_key(ds)
        if sop in seen["sop"] or content in seen["content"]:
            run.counts["duplicates"] += 1
            continue
        seen["sop"].add(sop)
        seen["content"].add(content)
        kept.append((src.name, ds))
        keys[src.name] = content
    if not kept:
        return
    with run.ctx.db.read() as s:
        old_sops = _existing(
            s, run.project.id, Instance.sop_uid, [str(d.SOPInstanceUID) for _, d in kept]
        )
        old_content = _existing(s, run.project.id, Instance.pixel_sha, list(keys.values()))
    fresh = [
        (k, d)
        for k, d in kept
        if str(d.SOPInstanceUID) not in old_sops and keys[k] not in old_content
    ]
    run.counts["duplicates"] += len(kept) - len(fresh)
    if not fresh:
        return
    build = dicom_io.build_images(fresh, max_voxels=settings.max_voxels)
    for rej in build.rejected:
        for key in rej.keys:
            run.problem(key, rej.reason)
    by_key = dict(fresh)
    info = dicom_io.series_info(fresh[0][1])
    single = len(build.images) == 1
    for img in build.images:
        first = by_key[img.instance_keys[0]]
        name = _dicom_image_name(info, img.part, _int(first.get("InstanceNumber")), single)
        staged = _staged(run, img.volume, name, "dicom")
        staged.series = info
        first_plane: dict[str, int] = {}
        frames: dict[str, int] = {}
        for plane, (key, _frame) in enumerate(img.planes):
            first_plane.setdefault(key, plane)
            frames[key] = frames.get(key, 0) + 1
        staged.plane_sources = [
            [str(by_key[key].SOPInstanceUID), int(frame)] for key, frame in img.planes
        ]
        for key in img.instance_keys:
            ds = by_key[key]
            digest = run.blobs.put(_dicom_bytes(ds)).digest
            staged.instances.append(
                _StagedInstance(
                    sop_uid=str(ds.SOPInstanceUID),
                    sop_class_uid=str(ds.SOPClassUID),
                    instance_number=_int(ds.get("InstanceNumber")),
                    first_plane=first_plane[key],
                    frames=frames[key],
                    dicom_digest=digest,
                    pixel_sha=keys[key],
                )
            )
        run.counts["instances"] += len(staged.instances)
        run.staged.append(staged)


def _ensure_frame_of_reference(ds: pydicom.Dataset, run: _Run) -> None:
    """Give spatially located images that lack a Frame of Reference UID one (the same
    for a whole series), so DICOM SEG can be made for them later."""
    if "FrameOfReferenceUID" in ds:
        return
    if "ImagePositionPatient" not in ds and "PerFrameFunctionalGroupsSequence" not in ds:
        return
    series = str(ds.get("SeriesInstanceUID", ""))
    ds.FrameOfReferenceUID = generate_uid(
        prefix=None, entropy_srcs=[series, "medlabel frame of reference"]
    )
    run.counts["frame_of_reference_added"] = run.counts.get("frame_of_reference_added", 0) + 1


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and str(value).strip() != "" else None
    except (TypeError, ValueError):
        return None


def _stage_dicom(
    run: _Run, sources: list[_Source], progress: ProgressFn | None, done: int, total: int
) -> int:
    # group by series from headers only, then read one series at a time
    groups: dict[tuple[str, str], list[_Source]] = {}
    for src in sources:
        try:
            head = pydicom.dcmread(
                src.path,
                stop_before_pixels=True,
                force=True,
                specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID"],
            )
            key = (str(head.get("StudyInstanceUID", "")), str(head.get("SeriesInstanceUID", "")))
        except Exception:  # noqa: BLE001 - unreadable: read_dataset below names the problem
            key = ("", f"unreadable:{src.name}")
        groups.setdefault(key, []).append(src)
    seen: dict[str, set[str]] = {"sop": set(), "content": set()}
    for members in groups.values():
        items: list[tuple[_Source, pydicom.Dataset]] = []
        for src in members:
            done += 1
            try:
                ds = dicom_io.read_dataset(src.path, name=src.name)
            except MedlabelError as exc:
                run.problem(src.name, exc.message, exc.status_code)
                continue
            if not dicom_io.is_image(ds):
                run.counts["skipped"] += 1
                run.problems.append(Problem(src.name, f"skipped: {dicom_io.sop_kind(ds)}"))
                continue
            items.append((src, ds))
        if items:
            _stage_series(run, items, seen)
        if progress:
            progress("importing", done, total)
    return done


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


def _commit(run: _Run, actor: Principal | None) -> tuple[ImportRecord, list[int]]:
    image_ids: list[int] = []
    with unit_of_work(run.ctx.db, run.ctx.blobs, run.blobs) as (s, _):
        record = ImportRecord(
            project_id=run.project.id,
            user_id=actor.id if actor else None,
            counts=dict(run.counts),
            report={
                "deidentification": run.report.to_dict(),
                "problems": [p.__dict__ for p in run.problems[:1000]],
            },
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
            for inst in st.instances:
                s.add(
                    Instance(
                        project_id=run.project.id,
                        series_id=series_id,
                        image_id=image.id,
                        **inst.__dict__,
                    )
                )
        record.counts = dict(run.counts, images=len(image_ids))
    return record, image_ids


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


def import_paths(
    ctx: Context,
    actor: Principal | None,
    project_id: int,
    paths: Sequence[Path],
    *,
    options: ImportOptions | None = None,
    progress: ProgressFn | None = None,
) -> ImportSummary:
    """Import files, folders and zip archives into a project.

    ``actor`` None means the machine's operator (CLI). Files of unknown type are skipped
    and listed in the report.

    Raises
    ------
    InvalidInputError
        When a file cannot be read and ``options.on_error`` is ``fail`` (the default),
        naming the files; or when nothing importable was found. Nothing is stored.
    """
    options = options or ImportOptions()
    with ctx.db.read() as s:
        if actor is not None:
            project = require_project(s, actor, project_id, ProjectRole.REVIEWER)
        else:
            found = s.get(Project, project_id)
            if found is None:
                raise NotFoundError(f"project {project_id} not found")
            project = found
    deid = Deidentifier(project.deid_secret, DeidOptions.model_validate(project.deid_options))
    run = _Run(ctx, project, options, deid, DeidReport(deid.options), BlobTransaction(ctx.blobs))
    tmp_root = ctx.settings.home / "tmp"
    tmp_root.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="import-", dir=tmp_root))
    try:
        sources = _scan(paths, workdir, run)
        total = len(sources)
        dicoms = [src for src in sources if src.kind == FileKind.DICOM]
        done = _stage_dicom(run, dicoms, progress, 0, total)
        for src in sources:
            if src.kind in (FileKind.NIFTI, FileKind.PNG, FileKind.JPEG, FileKind.TIFF):
                try:
                    _stage_file(run, src)
                except MedlabelError as exc:
                    run.problem(src.name, exc.message, exc.status_code)
                done += 1
                if progress:
                    progress("importing", done, total)
            elif src.kind not in (FileKind.DICOM,):
                run.counts["skipped"] += 1
                run.problems.append(Problem(src.name, f"skipped: not an image ({src.kind.value})"))
        rejected = [p for p in run.problems if not p.reason.startswith("skipped:")]
        if rejected and options.on_error == OnError.FAIL:
            statuses = {p.status for p in rejected}
            error = (
                _ERRORS.get(statuses.pop(), InvalidInputError)
                if len(statuses) == 1
                else (InvalidInputError)
            )
            raise error(
                _failure_message(rejected), details={"problems": [p.__dict__ for p in rejected]}
            )
        if not run.staged and run.counts["duplicates"] == 0:
            raise InvalidInputError(
                "no importable images found"
                + (f" ({_failure_message(run.problems)})" if run.problems else "")
            )
        record, image_ids = _commit(run, actor)
    except BaseException:
        with ctx.db.read() as s:
            run.blobs.rollback(s)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    log.info("import id=%s stored %d images", record.id, len(image_ids))
    return ImportSummary(record.id, image_ids, dict(record.counts), run.problems, record.report)


_ERRORS: dict[int, type[InvalidInputError]] = {
    413: TooLargeError,
    415: UnsupportedFormatError,
}


def _failure_message(problems: list[Problem]) -> str:
    head = "; ".join(f"{p.file}: {p.reason}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"{len(problems)} file(s) could not be imported — {head}{more}. Nothing was stored"


def get_import(ctx: Context, actor: Principal, import_id: int) -> ImportRecord:
    with ctx.db.read() as s:
        record = s.get(ImportRecord, import_id)
        if record is None:
            raise NotFoundError(f"import {import_id} not found")
        require_project(s, actor, record.project_id)
        return record


def list_imports(ctx: Context, actor: Principal, project_id: int) -> list[ImportRecord]:
    with ctx.db.read() as s:
        require_project(s, actor, project_id)
        return list(
            s.scalars(
                select(ImportRecord)
                .where(ImportRecord.project_id == project_id)
                .order_by(ImportRecord.id.desc())
            )
        )
