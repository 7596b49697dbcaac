"""Exports of a project's annotations (zipped) and their download."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import exports as svc

router = APIRouter(tags=["exports"])


class ExportIn(svc.ExportRequest):
    """What to export (the same as the parameters of an ``export`` job)."""


class ExportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    user_id: int | None
    format: str
    options: dict[str, Any]
    created_at: dt.datetime
    size: int | None
    summary: dict[str, Any]


@router.post(
    "/projects/{project_id}/exports", response_model=ExportOut, status_code=status.HTTP_201_CREATED
)
async def create_export(
    project_id: int, body: ExportIn, ctx: CtxDep, me: PrincipalDep
) -> ExportOut:
    """Export the project's annotations now, answering when the zip is ready; download it
    from ``/exports/{id}/download``. For large projects start an ``export`` job instead
    (``POST /projects/{id}/jobs``): it reports progress and can be cancelled."""
    row = await run_in_threadpool(
        svc.export_archive, ctx, me, project_id, body.format, **body.options()
    )
    return ExportOut.model_validate(row)


@router.get("/projects/{project_id}/exports", response_model=list[ExportOut])
def list_exports(project_id: int, ctx: CtxDep, me: PrincipalDep) -> list[ExportOut]:
    return [ExportOut.model_validate(r) for r in svc.list_exports(ctx, me, project_id)]


@router.get("/exports/{export_id}/download", response_class=StreamingResponse)
def download(export_id: int, ctx: CtxDep, me: PrincipalDep) -> StreamingResponse:
    row, chunks = svc.open_archive(ctx, me, export_id)
    name = f"medlabel-export-{row.id}-{row.format}.zip"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if row.size is not None:
        headers["Content-Length"] = str(row.size)
    return StreamingResponse(chunks, media_type="application/zip", headers=headers)
