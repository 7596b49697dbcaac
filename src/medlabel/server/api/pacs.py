"""PACS connections (DICOMweb): manage, search, pull studies (a job), push annotations.

Secrets (passwords, tokens) are accepted on creation and never returned. Failures of
the PACS itself are 424 (unreachable, refused credentials), 404 (unknown study) or 422
(a request the PACS refuses), never 500.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from medlabel.io.dicomweb import AuthKind, StudyMatch, StudyQuery
from medlabel.server.api.jobs import JobOut, _out
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import jobs as jobs_svc
from medlabel.services import pacs as svc

router = APIRouter(tags=["pacs"])


class ConnectionIn(svc.ConnectionSpec):
    """A new connection; ``secret`` is the password (basic) or token (bearer)."""


class ConnectionOut(BaseModel):
    id: int
    project_id: int
    name: str
    url: str
    auth_kind: AuthKind
    username: str | None
    has_secret: bool = Field(description="Whether a secret is stored (it is never returned).")
    created_by: int | None
    created_at: dt.datetime


class StudyOut(BaseModel):
    """A study on the PACS (its own identifiers: nothing is stored by a search)."""

    study_uid: str
    patient_id: str
    patient_name: str
    accession: str
    study_date: str
    description: str
    modalities: list[str]
    series_count: int | None
    instance_count: int | None


class PullIn(BaseModel):
    study_uids: list[str] = Field(min_length=1, max_length=svc.MAX_PULL_STUDIES)


class PushIn(BaseModel):
    connection_id: int
    kind: svc.PushKind = svc.PushKind.SEG
    which: svc.PushWhich = Field(
        default=svc.PushWhich.LATEST, description="latest revision, or the approved one"
    )


class PushOut(BaseModel):
    kind: svc.PushKind
    connection_id: int
    annotation_id: int
    revision_id: int
    study_uid: str = Field(description="De-identified StudyInstanceUID the object references.")
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str


def _conn(view: svc.ConnectionView) -> ConnectionOut:
    return ConnectionOut(**view.__dict__)


def _study(m: StudyMatch) -> StudyOut:
    return StudyOut(**m.__dict__)


@router.post(
    "/projects/{project_id}/pacs",
    response_model=ConnectionOut,
    status_code=status.HTTP_201_CREATED,
)
def create_connection(
    project_id: int, body: ConnectionIn, ctx: CtxDep, me: PrincipalDep
) -> ConnectionOut:
    """Add a DICOMweb PACS to the project (reviewers). Not contacted here: use
    ``POST /pacs/{id}/test``."""
    spec = svc.ConnectionSpec.model_validate(body.model_dump())
    return _conn(svc.create_connection(ctx, me, project_id, spec))


@router.get("/projects/{project_id}/pacs", response_model=list[ConnectionOut])
def list_connections(project_id: int, ctx: CtxDep, me: PrincipalDep) -> list[ConnectionOut]:
    return [_conn(v) for v in svc.list_connections(ctx, me, project_id)]


@router.get("/pacs/{connection_id}", response_model=ConnectionOut)
def get_connection(connection_id: int, ctx: CtxDep, me: PrincipalDep) -> ConnectionOut:
    return _conn(svc.get_connection(ctx, me, connection_id))


@router.delete("/pacs/{connection_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_connection(connection_id: int, ctx: CtxDep, me: PrincipalDep) -> Response:
    svc.delete_connection(ctx, me, connection_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/pacs/{connection_id}/test", status_code=status.HTTP_204_NO_CONTENT)
def test_connection(connection_id: int, ctx: CtxDep, me: PrincipalDep) -> Response:
    """Check that the PACS answers with this URL and these credentials."""
    svc.check_connection(ctx, me, connection_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/pacs/{connection_id}/search", response_model=list[StudyOut])
def search(
    connection_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    patient_id: Annotated[str | None, Query(max_length=64)] = None,
    accession: Annotated[str | None, Query(max_length=64)] = None,
    modality: Annotated[str | None, Query(max_length=16)] = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    description: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[StudyOut]:
    """QIDO-RS study search (filters combine; ``description`` matches a part, any case)."""
    query = StudyQuery(
        patient_id=patient_id or None,
        accession=accession or None,
        modality=modality or None,
        date_from=date_from,
        date_to=date_to,
        description=description or None,
        limit=limit,
        offset=offset,
    )
    return [_study(m) for m in svc.search(ctx, me, connection_id, query)]


@router.post(
    "/pacs/{connection_id}/pull", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED
)
def pull(connection_id: int, body: PullIn, ctx: CtxDep, me: PrincipalDep) -> JobOut:
    """Start a ``pacs_pull`` job that retrieves the studies and imports them
    (de-identified); poll ``/jobs/{id}`` for progress, cancel with ``/jobs/{id}/cancel``."""
    view = svc.get_connection(ctx, me, connection_id)
    params = {"connection_id": connection_id, "study_uids": body.study_uids}
    return _out(jobs_svc.submit_job(ctx, me, "pacs_pull", params, project_id=view.project_id))


@router.post("/annotations/{annotation_id}/push", response_model=PushOut)
async def push(annotation_id: int, body: PushIn, ctx: CtxDep, me: PrincipalDep) -> PushOut:
    """Send the annotation to a PACS of its project as DICOM SEG or SR (STOW-RS). The
    object references the de-identified UIDs of the images stored in medlabel."""
    result = await run_in_threadpool(
        svc.push, ctx, me, annotation_id, body.connection_id, body.kind, body.which
    )
    return PushOut(**result.__dict__)
