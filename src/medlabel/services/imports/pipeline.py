"""``import_paths``: scan, stage, commit; and the import history."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from medlabel.core.errors import InvalidInputError, MedlabelError, NotFoundError
from medlabel.io.sniff import FileKind
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, require_project
from medlabel.services.context import Context
from medlabel.services.imports.commit import commit
from medlabel.services.imports.model import (
    ERRORS,
    ImportOptions,
    ImportSummary,
    OnError,
    Problem,
    ProgressFn,
    Run,
)
from medlabel.services.imports.scan import scan
from medlabel.services.imports.staging import PARALLEL_FROM, stage_dicom, stage_file
from medlabel.services.imports.worker import Mode
from medlabel.services.imports.workspace import import_run
from medlabel.storage.db.models import ImportRecord, Project

log = logging.getLogger(__name__)

_IMAGE_FILES = (FileKind.NIFTI, FileKind.PNG, FileKind.JPEG, FileKind.TIFF)


def _failure_message(problems: list[Problem]) -> str:
    head = "; ".join(f"{p.file}: {p.reason}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"{len(problems)} file(s) could not be imported — {head}{more}. Nothing was stored"


def _project(ctx: Context, actor: Principal | None, project_id: int) -> Project:
    with ctx.db.read() as s:
        if actor is not None:
            return require_project(s, actor, project_id, ProjectRole.REVIEWER)
        project = s.get(Project, project_id)
        if project is None:
            raise NotFoundError(f"project {project_id} not found")
        return project


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
    project = _project(ctx, actor, project_id)
    with import_run(ctx, project, options, prefix="import-") as run:
        sources = scan(paths, run)
        total = len(sources)
        dicoms = [src for src in sources if src.kind == FileKind.DICOM]
        pool = ctx.process_pool() if len(dicoms) >= PARALLEL_FROM else None
        mode = Mode.INGEST if options.background else Mode.FULL
        done = stage_dicom(run, dicoms, pool, progress, total, mode)
        for src in sources:
            if src.kind in _IMAGE_FILES:
                try:
                    stage_file(run, src)
                except MedlabelError as exc:
                    run.problem(src.name, exc.message, exc.status_code)
                done += 1
            elif src.kind != FileKind.DICOM:
                run.skip(src.name, f"not an image ({src.kind.value})")
                done += 1
        if progress:
            progress("importing", done, total)
        _check(run)
        # temporary files go before the commit's file-system sync, which would write them
        shutil.rmtree(run.workdir, ignore_errors=True)
        record, image_ids = commit(run, actor)
    job_id = None
    if run.pending:
        job_id = _start_preparing(ctx, actor, record.id, project_id)
    log.info("import id=%s stored %d images", record.id, len(image_ids))
    return ImportSummary(
        record.id, image_ids, dict(record.counts), run.problems, record.report, job_id
    )


def _start_preparing(ctx: Context, actor: Principal | None, import_id: int, project_id: int) -> int:
    """Queue the job that builds a background import's images (run by a server)."""
    from medlabel.services.jobs import submit_job

    view = submit_job(ctx, actor, "prepare_import", {"import_id": import_id}, project_id=project_id)
    return view.job.id


def _check(run: Run) -> None:
    rejected = [p for p in run.problems if p.status >= 400]
    if rejected and run.options.on_error == OnError.FAIL:
        statuses = {p.status for p in rejected}
        error = ERRORS.get(statuses.pop(), InvalidInputError) if len(statuses) == 1 else None
        raise (error or InvalidInputError)(
            _failure_message(rejected), details={"problems": [p.__dict__ for p in rejected]}
        )
    if not run.staged and not run.pending and run.counts["duplicates"] == 0:
        raise InvalidInputError(
            "no importable images found"
            + (f" ({_failure_message(run.problems)})" if run.problems else "")
        )


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
