"""Routes of the DICOM receiver: which called AE title delivers into which project."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import receiver as svc

router = APIRouter(tags=["dicom receiver"])


class DicomRouteIn(BaseModel):
    ae_title: str = Field(
        description="The called AE title senders use for this project (1-16 characters)."
    )
    allowed_calling_aets: list[str] = Field(
        default_factory=list, description="Only these calling AE titles may send (empty: any)."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Only these IP addresses or networks may send, e.g. 10.1.0.0/16 (empty: any).",
    )


class DicomRouteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ae_title: str
    project_id: int
    allowed_calling_aets: list[str]
    allowed_hosts: list[str]
    created_by: int | None
    created_at: dt.datetime


@router.get("/dicom-routes", response_model=list[DicomRouteOut])
def list_all_routes(ctx: CtxDep, me: PrincipalDep) -> list[DicomRouteOut]:
    """Routes of every project you are a reviewer of (administrators: all)."""
    return [DicomRouteOut.model_validate(r) for r in svc.list_routes(ctx, me)]


@router.get("/projects/{project_id}/dicom-routes", response_model=list[DicomRouteOut])
def list_routes(project_id: int, ctx: CtxDep, me: PrincipalDep) -> list[DicomRouteOut]:
    return [DicomRouteOut.model_validate(r) for r in svc.list_routes(ctx, me, project_id)]


@router.post(
    "/projects/{project_id}/dicom-routes",
    response_model=DicomRouteOut,
    status_code=status.HTTP_201_CREATED,
)
def add_route(project_id: int, body: DicomRouteIn, ctx: CtxDep, me: PrincipalDep) -> DicomRouteOut:
    """Route studies sent to the receiver with this called AE title into the project
    (project reviewers and administrators)."""
    route = svc.add_route(
        ctx,
        me,
        project_id,
        body.ae_title,
        allowed_calling_aets=body.allowed_calling_aets,
        allowed_hosts=body.allowed_hosts,
    )
    return DicomRouteOut.model_validate(route)


@router.delete("/dicom-routes/{route_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_route(route_id: int, ctx: CtxDep, me: PrincipalDep) -> None:
    """Stop routing the AE title (studies already received stay)."""
    svc.remove_route(ctx, me, route_id)
