"""``prepare_import``: build the images of a background import — decode its stored,
de-identified instances and stack each series (see
:mod:`medlabel.services.imports.prepare`). Queued by the import itself."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from medlabel.core.errors import NotFoundError
from medlabel.jobs.reporter import Reporter
from medlabel.jobs.spec import JobEnv, JobKind
from medlabel.services.context import Context
from medlabel.storage.db.models import ImportRecord


class PrepareImportParams(BaseModel):
    """The import whose images to build."""

    import_id: int = Field(description="A background import of the job's project.")


def _check(ctx: Context, project_id: int | None, params: PrepareImportParams) -> None:
    with ctx.db.read() as s:
        record = s.get(ImportRecord, params.import_id)
        if record is None or record.project_id != project_id:
            raise NotFoundError(f"import {params.import_id} is not an import of this project")


def _run(env: JobEnv, params: PrepareImportParams, reporter: Reporter) -> dict[str, Any]:
    from medlabel.services.imports.prepare import mark_failed, pending_instances, prepare_import

    n = len(pending_instances(env.ctx, params.import_id))
    reporter.log(f"building the images of import {params.import_id} from {n} instance(s)")
    reporter.progress(0, n, "building images")

    def progress(stage: str, done: int, total: int) -> None:
        reporter.progress(done, total, stage)

    try:
        summary = prepare_import(env.ctx, params.import_id, progress=progress)
    except BaseException:
        mark_failed(env.ctx, params.import_id)
        raise
    rejected = [p for p in summary.problems if p.status >= 400]
    reporter.log(
        f"built {len(summary.image_ids)} image(s); {len(rejected)} instance(s) could not be used"
    )
    for p in rejected[:100]:
        reporter.log(f"{p.file}: {p.reason}", "warning")
    return {"import_id": params.import_id, "image_ids": summary.image_ids,
            "rejected": len(rejected)}  # fmt: skip


KIND = JobKind(
    name="prepare_import",
    params=PrepareImportParams,
    run=_run,
    check=_check,
    resumable=True,  # picks up the instances still without an image
    title="Build the images of a background import (decode and stack its stored instances)",
)
