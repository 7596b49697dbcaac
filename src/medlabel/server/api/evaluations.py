"""Evaluation reports of a project (started as ``evaluate`` jobs)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from medlabel.security.roles import ProjectRole
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import evaluations as svc
from medlabel.storage.db.models import Evaluation

router = APIRouter(tags=["evaluations"])

#: the stored report is self-contained (inline SVG and CSS); nothing else may load
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


class EvaluationOut(BaseModel):
    id: int
    project_id: int
    created_by: int | None
    created_at: dt.datetime
    subject: dict[str, Any]
    options: dict[str, Any]
    cases: int
    skipped: int
    summary: dict[str, Any]


def _out(row: Evaluation) -> EvaluationOut:
    return EvaluationOut.model_validate(row, from_attributes=True)


@router.get("/projects/{project_id}/evaluations", response_model=list[EvaluationOut])
def list_evaluations(project_id: int, ctx: CtxDep, me: PrincipalDep) -> list[EvaluationOut]:
    """Evaluations of the project, newest first; start one as a job of kind ``evaluate``
    (``POST /api/projects/{id}/jobs``)."""
    return [_out(r) for r in svc.list_evaluations(ctx, me, project_id)]


class ReaderSubjectOut(BaseModel):
    user_id: int
    name: str
    full_name: str
    role: ProjectRole
    readings: int = Field(description="Their readings with a revision.")
    approved: int = Field(description="Of those, how many a reviewer approved.")


class EngineSubjectOut(BaseModel):
    engine_name: str
    revisions: int
    images: int


class SubjectsOut(BaseModel):
    readers: list[ReaderSubjectOut]
    engines: list[EngineSubjectOut]


@router.get("/projects/{project_id}/evaluations/subjects", response_model=SubjectsOut)
def list_subjects(project_id: int, ctx: CtxDep, me: PrincipalDep) -> SubjectsOut:
    """What can be evaluated: the project's members as readers (with their reading
    counts) and the engines that made revisions in it (with revision counts)."""
    return SubjectsOut.model_validate(svc.list_subjects(ctx, me, project_id), from_attributes=True)


@router.get("/evaluations/{evaluation_id}", response_model=EvaluationOut)
def get_evaluation(evaluation_id: int, ctx: CtxDep, me: PrincipalDep) -> EvaluationOut:
    return _out(svc.get_evaluation(ctx, me, evaluation_id))


@router.get("/evaluations/{evaluation_id}/report.json")
def report_json(evaluation_id: int, ctx: CtxDep, me: PrincipalDep) -> dict[str, Any]:
    """The whole report: per-case rows, per-label summary with confidence intervals."""
    return svc.report_json(ctx, me, evaluation_id)


@router.get("/evaluations/{evaluation_id}/report.html", response_class=Response)
def report_html(evaluation_id: int, ctx: CtxDep, me: PrincipalDep) -> Response:
    """The report as one self-contained page (tables and plots)."""
    return Response(
        svc.report_html(ctx, me, evaluation_id),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"},
    )
