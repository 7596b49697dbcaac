"""Background jobs: start one in a project, list, watch (progress, logs), cancel, retry."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from medlabel.jobs.state import JobState
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import jobs as svc

router = APIRouter(tags=["jobs"])


class JobIn(BaseModel):
    kind: str = Field(min_length=1, max_length=64, description="A job kind, see /jobs/kinds.")
    params: dict[str, Any] = Field(default_factory=dict, description="The kind's parameters.")


class ProgressOut(BaseModel):
    done: float
    total: float | None = Field(description="None while the amount of work is unknown.")
    message: str


class JobOut(BaseModel):
    id: int
    project_id: int | None
    kind: str
    state: JobState
    params: dict[str, Any]
    result: dict[str, Any]
    error: str | None = Field(description="Why a failed job failed (details in its log).")
    progress: ProgressOut
    created_by: int | None
    created_by_name: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    cancel_requested: bool
    attempt: int


class JobLogOut(BaseModel):
    seq: int
    attempt: int
    at: dt.datetime
    level: str
    line: str


class JobLogsOut(BaseModel):
    lines: list[JobLogOut]
    next: int = Field(description="Pass as ?after= to get only newer lines.")
    state: JobState = Field(description="The job's state when the lines were read.")


class JobKindOut(BaseModel):
    name: str
    title: str
    needs_project: bool
    resumable: bool
    params_schema: dict[str, Any]


def _out(view: svc.JobView) -> JobOut:
    j = view.job
    return JobOut(
        id=j.id,
        project_id=j.project_id,
        kind=j.kind,
        state=JobState(j.state),
        params=j.params,
        result=j.result,
        error=j.error,
        progress=ProgressOut(
            done=j.progress_done, total=j.progress_total, message=j.progress_message
        ),
        created_by=j.created_by,
        created_by_name=view.creator,
        created_at=j.created_at,
        started_at=j.started_at,
        finished_at=j.finished_at,
        cancel_requested=j.cancel_requested,
        attempt=j.attempt,
    )


@router.get("/jobs/kinds", response_model=list[JobKindOut])
def list_kinds(ctx: CtxDep, me: PrincipalDep) -> list[JobKindOut]:
    """The kinds of job this server runs, with the JSON schema of their parameters."""
    return [
        JobKindOut(
            name=k.name,
            title=k.title,
            needs_project=k.needs_project,
            resumable=k.resumable,
            params_schema=k.params.model_json_schema(),
        )
        for k in ctx.job_kinds.all()
    ]


@router.post(
    "/projects/{project_id}/jobs", response_model=JobOut, status_code=status.HTTP_201_CREATED
)
def submit(project_id: int, body: JobIn, ctx: CtxDep, me: PrincipalDep) -> JobOut:
    """Queue a job; poll ``/jobs/{id}`` for its state and progress. Unknown kinds and
    invalid parameters are refused (422) before anything is queued."""
    return _out(svc.submit_job(ctx, me, body.kind, body.params, project_id=project_id))


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(
    ctx: CtxDep,
    me: PrincipalDep,
    project_id: int | None = None,
    state: JobState | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=svc.MAX_LIST)] = 50,
    before: Annotated[int | None, Query(description="Only jobs with a smaller id.")] = None,
) -> list[JobOut]:
    """Jobs you may see, newest first."""
    views = svc.list_jobs(
        ctx, me, project_id=project_id, state=state, kind=kind, limit=limit, before=before
    )
    return [_out(v) for v in views]


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: int, ctx: CtxDep, me: PrincipalDep) -> JobOut:
    return _out(svc.get_job(ctx, me, job_id))


@router.get("/jobs/{job_id}/logs", response_model=JobLogsOut)
def logs(
    job_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    after: Annotated[int, Query(ge=0, description="Only lines with a larger seq.")] = 0,
    limit: Annotated[int, Query(ge=1, le=svc.MAX_LOG_LINES)] = 1000,
) -> JobLogsOut:
    """The job's log lines (readable while it runs): poll with ``after`` = ``next``."""
    view = svc.get_job(ctx, me, job_id)
    rows = svc.job_logs(ctx, me, job_id, after=after, limit=limit)
    return JobLogsOut(
        lines=[
            JobLogOut(seq=r.seq, attempt=r.attempt, at=r.at, level=r.level, line=r.line)
            for r in rows
        ],
        next=rows[-1].seq if rows else after,
        state=JobState(view.job.state),
    )


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel(job_id: int, ctx: CtxDep, me: PrincipalDep) -> JobOut:
    """Cancel a queued job, or ask a running one to stop (it ends ``cancelled``)."""
    return _out(svc.cancel_job(ctx, me, job_id))


@router.post("/jobs/{job_id}/retry", response_model=JobOut)
def retry(job_id: int, ctx: CtxDep, me: PrincipalDep) -> JobOut:
    """Queue a failed or cancelled job again (a new attempt, same parameters)."""
    return _out(svc.retry_job(ctx, me, job_id))
