"""``export``: write a project's annotations in a format, zip them into the blob store
and record the export (downloadable at ``/api/exports/{export_id}/download``)."""

from __future__ import annotations

from typing import Any

from medlabel.jobs.reporter import Reporter
from medlabel.jobs.spec import JobEnv, JobKind
from medlabel.services.context import Context
from medlabel.services.exports import ExportRequest, check_exportable, export_archive


def _check(ctx: Context, project_id: int | None, params: ExportRequest) -> None:
    assert project_id is not None
    check_exportable(ctx, project_id, params.which, params.image_ids)


def _run(env: JobEnv, params: ExportRequest, reporter: Reporter) -> dict[str, Any]:
    reporter.log(f"exporting {params.which.value} revisions as {params.format.value}")
    row = export_archive(
        env.ctx,
        env.principal(),
        env.project_id,
        params.format,
        progress=reporter.stage_progress,
        **params.options(),
    )
    summary = row.summary or {}
    skipped = summary.get("skipped", [])
    for item in skipped[:100]:
        reporter.log(f"skipped {item.get('name') or item.get('image_id')}: {item['reason']}")
    exported = summary.get("exported", 0)
    reporter.log(f"export {row.id}: {exported} image(s), {row.size} bytes")
    reporter.progress(exported, exported, "images exported")
    return {
        "export_id": row.id,
        "format": row.format,
        "which": params.which.value,
        "exported": exported,
        "skipped": len(skipped),
        "size": row.size,
    }


KIND = JobKind(
    name="export",
    params=ExportRequest,
    run=_run,
    check=_check,
    title="Export the project's annotations as a zip (NIfTI, DICOM SEG, COCO, CSV, nnU-Net)",
)
