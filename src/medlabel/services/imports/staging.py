"""Staging: turning files into stored blobs and image descriptions, before the commit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import Any

import numpy as np
import pydicom
from sqlalchemy import select
from sqlalchemy.orm import Session

from medlabel.core.errors import MedlabelError
from medlabel.imaging.render import thumbnail
from medlabel.imaging.volume import Volume
from medlabel.imaging.windowing import CT_PRESETS, Window, auto_window
from medlabel.io import dicom as dicom_io
from medlabel.io.arrays import npy_stream
from medlabel.io.nifti import read_nifti
from medlabel.io.png import encode_png_fast
from medlabel.io.raster import read_raster
from medlabel.io.sniff import FileKind
from medlabel.services.imports.model import (
    ProgressFn,
    Run,
    Source,
    StagedImage,
    StagedInstance,
)
from medlabel.services.imports.worker import (
    DicomTask,
    Mode,
    Prepared,
    load_prepared,
    prepare_dicom,
)
from medlabel.storage.db.models import Instance

#: below this many DICOM files an import runs in-process (a worker pool costs ~1 s)
PARALLEL_FROM = 32


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


def staged_image(run: Run, volume: Volume, name: str, source_format: str) -> StagedImage:
    """Store a volume's pixels and thumbnail; describe the image for the commit."""
    arr = np.ascontiguousarray(volume.array)
    pixel = run.blobs.put_stream(npy_stream(arr))
    window = default_window(volume)
    thumb = run.blobs.put(encode_png_fast(thumbnail(arr, volume.affine, window)))
    return StagedImage(
        name=name,
        source_format=source_format,
        volume_meta=dict(volume.metadata),
        modality=volume.modality,
        shape=list(volume.spatial_shape),
        channels=volume.channels,
        dtype=str(arr.dtype),
        affine=volume.affine.tolist(),
        geometry_known=volume.geometry_known,
        pixel_digest=pixel.digest,
        pixel_bytes=arr.nbytes,
        thumbnail_digest=thumb.digest,
        window=window,
    )


def stage_file(run: Run, src: Source) -> None:
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
    run.staged.append(staged_image(run, volume, name, fmt))


def _strip_ext(name: str, exts: tuple[str, ...]) -> str:
    lower = name.lower()
    for ext in exts:
        if lower.endswith(ext):
            return name[: -len(ext)]
    stem, dot, _ = name.rpartition(".")
    return stem if dot and "/" not in name[len(stem) :] else name


# DICOM ------------------------------------------------------------------------------------
def _prepared(
    run: Run, sources: list[Source], pool: Executor | None, mode: Mode
) -> Iterator[Prepared]:
    deid = (run.project.deid_secret, json.dumps(run.deid.options.model_dump()))
    folder = run.workdir / "prepared"
    folder.mkdir(exist_ok=True)
    tasks = [
        DicomTask(src.path, src.name, folder / str(i), deid, run.ctx.blobs, mode, src.digest)
        for i, src in enumerate(sources)
    ]
    if pool is None or len(tasks) < PARALLEL_FROM:
        yield from map(prepare_dicom, tasks)
    else:
        # chunks of up to 16 files, smaller for few files so that one slow file (a long
        # multi-frame) does not hold back a whole chunk
        yield from pool.map(prepare_dicom, tasks, chunksize=max(1, min(16, len(tasks) // 16)))


def stage_dicom(
    run: Run,
    sources: list[Source],
    pool: Executor | None,
    progress: ProgressFn | None,
    total: int,
    mode: Mode = Mode.FULL,
) -> int:
    """Prepare every DICOM file (in parallel when there are many), then build each
    series' images — or, in mode ``ingest``, keep the stored instances in
    ``run.pending`` for a later build. Returns the number of files done."""
    series: dict[tuple[str, str], list[Prepared]] = {}
    done = 0
    for prep in _prepared(run, sources, pool, mode):
        done += 1
        if prep.dicom_digest:
            run.blobs.adopt(prep.dicom_digest, prep.created)
            if prep.created:
                run.blobs.sync_soon(prep.dicom_digest)
        if prep.error is not None:
            run.problem(prep.name, prep.error, prep.status)
        elif prep.skipped is not None:
            run.skip(prep.name, prep.skipped)
        else:
            if prep.deid is not None:
                run.report.add(prep.deid)
            if prep.frame_of_reference_added:
                run.count("frame_of_reference_added")
            if mode == Mode.INGEST:
                run.pending.append(prep)
            else:
                load_prepared(prep, run.ctx.blobs)  # overlaps with the workers' next files
                series.setdefault((prep.study_uid, prep.series_uid), []).append(prep)
        if progress and done % 8 == 0:
            progress("importing" if mode != Mode.STORED else "building images", done, total)
    seen: dict[str, set[str]] = {"sop": set(), "content": set()}
    if mode == Mode.INGEST:
        run.pending = _fresh(run, run.pending, seen, content=False)
        run.count("instances", len(run.pending))
    for members in series.values():
        _stage_series(run, members, seen, sops=mode != Mode.STORED)
    return done


def _existing(s: Session, project_id: int, column: Any, values: list[str]) -> set[str]:
    out: set[str] = set()
    for i in range(0, len(values), 500):
        chunk = values[i : i + 500]
        out.update(
            s.scalars(select(column).where(Instance.project_id == project_id, column.in_(chunk)))
        )
    return out


def _fresh(
    run: Run,
    members: list[Prepared],
    seen: dict[str, set[str]],
    *,
    sops: bool = True,
    content: bool = True,
) -> list[Prepared]:
    """Drop instances already in this import or the project: same SOP Instance UID
    (unless ``sops`` is False: instances stored by a background import's first stage
    are in the project already) or same decoded pixels (``content``; not known before
    decoding)."""
    kept = []
    for prep in members:
        if prep.sop_uid in seen["sop"] or (content and prep.content_key in seen["content"]):
            continue
        seen["sop"].add(prep.sop_uid)
        seen["content"].add(prep.content_key)
        kept.append(prep)
    old_sops: set[str] = set()
    old_content: set[str] = set()
    with run.ctx.db.read() as s:
        if sops:
            old_sops = _existing(s, run.project.id, Instance.sop_uid, [p.sop_uid for p in kept])
        if content:
            old_content = _existing(
                s, run.project.id, Instance.pixel_sha, [p.content_key for p in kept]
            )
    fresh = [p for p in kept if p.sop_uid not in old_sops and p.content_key not in old_content]
    run.count("duplicates", len(members) - len(fresh))
    return fresh


def _image_name(info: dicom_io.SeriesInfo, part: str, number: int | None, single: bool) -> str:
    bits = [info.patient_id or "", info.modality or "OT"]
    bits.append(f"series {info.series_number}" if info.series_number is not None else "series")
    if info.series_description:
        bits.append(info.series_description)
    name = " ".join(b for b in bits if b)
    if part:
        name += f" [{part}]"
    if not single and number is not None:
        name += f" #{number}"
    return name


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and str(value).strip() != "" else None
    except (TypeError, ValueError):
        return None


def _stage_series(
    run: Run, members: list[Prepared], seen: dict[str, set[str]], *, sops: bool = True
) -> None:
    """One DICOM series: drop duplicates, build its volumes, store pixels and thumbnails."""
    fresh = _fresh(run, members, seen, sops=sops)
    if not fresh:
        return
    by_key: dict[str, pydicom.Dataset] = {}
    decoded: dict[str, np.ndarray] = {}
    prep_of: dict[str, Prepared] = {}
    for prep in fresh:
        assert prep.header is not None and prep.frames is not None
        by_key[prep.name], decoded[prep.name] = prep.header, prep.frames
        prep_of[prep.name] = prep
    items = list(by_key.items())
    try:
        build = dicom_io.build_images(items, max_voxels=run.ctx.settings.max_voxels, frames=decoded)
    except MedlabelError as exc:
        for key in by_key:
            run.problem(key, exc.message, exc.status_code)
        return
    for rej in build.rejected:
        for key in rej.keys:
            run.problem(key, rej.reason)
    info = dicom_io.series_info(items[0][1])
    single = len(build.images) == 1
    for img in build.images:
        first = by_key[img.instance_keys[0]]
        name = _image_name(info, img.part, _int(first.get("InstanceNumber")), single)
        staged = staged_image(run, img.volume, name, "dicom")
        staged.series = info
        first_plane: dict[str, int] = {}
        frames: dict[str, int] = {}
        for plane, (key, _frame) in enumerate(img.planes):
            first_plane.setdefault(key, plane)
            frames[key] = frames.get(key, 0) + 1
        staged.plane_sources = [[prep_of[key].sop_uid, int(frame)] for key, frame in img.planes]
        for key in img.instance_keys:
            ds, prep = by_key[key], prep_of[key]
            staged.instances.append(
                StagedInstance(
                    sop_uid=prep.sop_uid,
                    sop_class_uid=str(ds.SOPClassUID),
                    instance_number=_int(ds.get("InstanceNumber")),
                    first_plane=first_plane[key],
                    frames=frames[key],
                    dicom_digest=prep.dicom_digest,
                    pixel_sha=prep.content_key,
                )
            )
        run.count("instances", len(staged.instances))
        run.staged.append(staged)
