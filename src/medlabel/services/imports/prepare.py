"""The second stage of a background import: decode the stored instances and build their
images (run by the ``prepare_import`` job).

The instances were read, checked, de-identified, stored and indexed by
:func:`~medlabel.services.imports.import_paths`; here each stored file is decoded (in
the import worker processes for large imports), duplicates of content already in the
project are recognised, each series is built into images exactly as in a one-stage
import, and one transaction inserts the images, points the instances at them and
removes the instances that could not be used (reported in the import's problems, their
files deleted unless something else refers to them). Running it again after an
interruption picks up the instances still without an image.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from sqlalchemy import delete, select

from medlabel.core.errors import NotFoundError
from medlabel.io.sniff import FileKind
from medlabel.services.blobrefs import referenced_among, unit_of_work
from medlabel.services.context import Context
from medlabel.services.imports.commit import SeriesRows, add_images
from medlabel.services.imports.model import (
    ImportOptions,
    ImportSummary,
    OnError,
    ProgressFn,
    Run,
    Source,
)
from medlabel.services.imports.staging import PARALLEL_FROM, stage_dicom
from medlabel.services.imports.worker import Mode
from medlabel.services.imports.workspace import import_run
from medlabel.storage.db.models import ImportRecord, Instance, Project

log = logging.getLogger(__name__)

#: problems kept in an import's report
_MAX_PROBLEMS = 1000


def pending_instances(ctx: Context, import_id: int) -> list[tuple[str, str]]:
    """``(SOP Instance UID, blob digest)`` of the import's instances without an image."""
    with ctx.db.read() as s:
        rows = s.execute(
            select(Instance.sop_uid, Instance.dicom_digest)
            .where(Instance.import_id == import_id, Instance.image_id.is_(None))
            .order_by(Instance.id)
        ).all()
    return [(sop, digest) for sop, digest in rows]


def prepare_import(
    ctx: Context, import_id: int, *, progress: ProgressFn | None = None
) -> ImportSummary:
    """Build the images of a background import's stored instances.

    Raises
    ------
    NotFoundError
        No such import.
    """
    with ctx.db.read() as s:
        record = s.get(ImportRecord, import_id)
        if record is None:
            raise NotFoundError(f"import {import_id} not found")
        project = s.get(Project, record.project_id)
        assert project is not None
    pending = pending_instances(ctx, import_id)
    with import_run(ctx, project, ImportOptions(on_error=OnError.SKIP), prefix="prepare-") as run:
        sources = [_source(ctx, run.workdir, sop, digest) for sop, digest in pending]
        pool = ctx.process_pool() if len(sources) >= PARALLEL_FROM else None
        stage_dicom(run, sources, pool, progress, len(sources), Mode.STORED)
        shutil.rmtree(run.workdir, ignore_errors=True)
        image_ids = _commit(run, import_id)
    with ctx.db.read() as s:
        record = s.get(ImportRecord, import_id)
        assert record is not None
        counts, report = dict(record.counts), dict(record.report)
    log.info("import id=%s: built %d images", import_id, len(image_ids))
    return ImportSummary(import_id, image_ids, counts, run.problems, report)


def mark_failed(ctx: Context, import_id: int) -> None:
    """Record that building a background import's images failed (the job's log says why);
    its stored instances stay, so a retried job can build them."""
    with ctx.db.write() as s:
        record = s.get(ImportRecord, import_id)
        if record is not None and record.status == "preparing":
            record.status = "failed"


def _source(ctx: Context, workdir: Path, sop: str, digest: str) -> Source:
    path = ctx.blobs.local_path(digest)
    if path is None:  # an object store: decode a local copy
        path = workdir / "stored" / digest
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(ctx.blobs.read_bytes(digest))
    return Source(path, f"instance {sop}", FileKind.DICOM, digest)


def _commit(run: Run, import_id: int) -> list[int]:
    """Insert the images, point their instances at them, drop the instances left over
    (undecodable or duplicates) and bring the import's counts and report up to date."""
    ctx = run.ctx
    with unit_of_work(ctx.db, ctx.blobs, run.blobs) as (s, _):
        record = s.get(ImportRecord, import_id)
        assert record is not None
        image_ids = add_images(s, run, import_id, SeriesRows(), instances_stored=True)
        dropped = list(
            s.scalars(
                select(Instance.dicom_digest).where(
                    Instance.import_id == import_id, Instance.image_id.is_(None)
                )
            )
        )
        s.execute(
            delete(Instance).where(Instance.import_id == import_id, Instance.image_id.is_(None))
        )
        counts = dict(record.counts)
        counts["images"] = counts.get("images", 0) + len(image_ids)
        counts["instances"] = counts.get("instances", 0) - len(dropped)
        for key in ("duplicates", "rejected"):
            counts[key] = counts.get(key, 0) + run.counts.get(key, 0)
        report = dict(record.report)
        problems = list(report.get("problems", []))
        report["problems"] = (problems + [p.__dict__ for p in run.problems])[:_MAX_PROBLEMS]
        record.counts, record.report, record.status = counts, report, "done"
    # files of dropped instances (same digest, same project: nothing else may use them)
    with ctx.db.read() as s:
        keep = referenced_among(s, dropped)
    for digest in set(dropped) - keep:
        ctx.blobs.delete(digest)
    return image_ids
