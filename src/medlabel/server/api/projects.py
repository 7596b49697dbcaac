"""Projects, their members and label schemas."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from medlabel.active import StrategyName
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import Code, LabelSpec
from medlabel.security.deid import DeidOptions
from medlabel.security.roles import ProjectRole
from medlabel.server.api.users import UserOut
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import projects as svc
from medlabel.services.assignments import MAX_READERS
from medlabel.services.users import get_user
from medlabel.storage.db.models import Label

router = APIRouter(tags=["projects"])


class ProjectIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=10_000)
    deid: DeidOptions = Field(default_factory=DeidOptions)


class ProjectPatch(BaseModel):
    description: str | None = Field(default=None, max_length=10_000)
    deid: DeidOptions | None = None
    readers_per_image: int | None = Field(
        default=None, ge=1, le=MAX_READERS, description="Independent readers wanted per image."
    )
    blinded: bool | None = Field(
        default=None, description="Readers below the reviewer role see only their own work."
    )
    active_strategy: StrategyName | None = Field(
        default=None, description="How 'next image' orders unlabelled images (active learning)."
    )


class ProjectOut(BaseModel):
    id: int
    name: str
    description: str
    created_at: dt.datetime
    role: ProjectRole = Field(description="Your role in this project.")
    deid: DeidOptions
    counts: dict[str, int] = Field(description="Images per status.")
    total_images: int
    readers_per_image: int
    blinded: bool
    active_strategy: str = "order"


class MemberIn(BaseModel):
    role: ProjectRole | None = None


class MemberOut(BaseModel):
    user: UserOut
    role: ProjectRole


class LabelOut(BaseModel):
    id: int
    name: str
    kind: LabelKind
    color: str
    value: int | None
    code: Code | None
    description: str


class LabelPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    color: str | None = None
    description: str | None = Field(default=None, max_length=1000)


def _project_out(summary: svc.ProjectSummary) -> ProjectOut:
    p = summary.project
    return ProjectOut(
        id=p.id,
        name=p.name,
        description=p.description,
        created_at=p.created_at,
        role=summary.role,
        deid=DeidOptions.model_validate(p.deid_options or {}),
        counts=summary.counts,
        total_images=sum(summary.counts.values()),
        readers_per_image=p.readers_per_image,
        blinded=p.blinded,
        active_strategy=p.active_strategy,
    )


def label_out(label: Label) -> LabelOut:
    code = None
    if label.code_value and label.code_scheme and label.code_meaning:
        code = Code(value=label.code_value, scheme=label.code_scheme, meaning=label.code_meaning)
    return LabelOut(
        id=label.id,
        name=label.name,
        kind=LabelKind(label.kind),
        color=label.color,
        value=label.value,
        code=code,
        description=label.description,
    )


@router.get("/projects", response_model=list[ProjectOut])
def list_projects(ctx: CtxDep, me: PrincipalDep) -> list[ProjectOut]:
    """The projects you are a member of (all, for administrators)."""
    return [_project_out(p) for p in svc.list_projects(ctx, me)]


@router.post("/projects", response_model=ProjectOut, status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectIn, ctx: CtxDep, me: PrincipalDep) -> ProjectOut:
    project = svc.create_project(
        ctx, me, body.name, description=body.description, deid_options=body.deid
    )
    return _project_out(svc.get_project(ctx, me, project.id))


@router.get("/projects/{project_id}", response_model=ProjectOut)
def get_project(project_id: int, ctx: CtxDep, me: PrincipalDep) -> ProjectOut:
    return _project_out(svc.get_project(ctx, me, project_id))


@router.patch("/projects/{project_id}", response_model=ProjectOut)
def update_project(
    project_id: int, body: ProjectPatch, ctx: CtxDep, me: PrincipalDep
) -> ProjectOut:
    svc.update_project(
        ctx,
        me,
        project_id,
        description=body.description,
        deid_options=body.deid,
        readers_per_image=body.readers_per_image,
        blinded=body.blinded,
        active_strategy=body.active_strategy,
    )
    return _project_out(svc.get_project(ctx, me, project_id))


@router.delete("/projects/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project(project_id: int, ctx: CtxDep, me: PrincipalDep) -> None:
    svc.delete_project(ctx, me, project_id)


@router.get("/projects/{project_id}/members", response_model=list[MemberOut])
def list_members(project_id: int, ctx: CtxDep, me: PrincipalDep) -> list[MemberOut]:
    return [
        MemberOut(user=UserOut.model_validate(u), role=ProjectRole(r))
        for u, r in svc.list_members(ctx, me, project_id)
    ]


@router.put("/projects/{project_id}/members/{user_id}", response_model=MemberOut)
def set_member(
    project_id: int, user_id: int, body: MemberIn, ctx: CtxDep, me: PrincipalDep
) -> MemberOut:
    member = svc.set_member(ctx, me, project_id, user_id, body.role)
    user = get_user(ctx, user_id)
    return MemberOut(user=UserOut.model_validate(user), role=ProjectRole(member.role))


@router.delete("/projects/{project_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(project_id: int, user_id: int, ctx: CtxDep, me: PrincipalDep) -> None:
    svc.remove_member(ctx, me, project_id, user_id)


@router.get("/projects/{project_id}/labels", response_model=list[LabelOut])
def list_labels(project_id: int, ctx: CtxDep, me: PrincipalDep) -> list[LabelOut]:
    return [label_out(lab) for lab in svc.list_labels(ctx, me, project_id)]


@router.post(
    "/projects/{project_id}/labels",
    response_model=list[LabelOut],
    status_code=status.HTTP_201_CREATED,
)
def add_labels(
    project_id: int, body: list[LabelSpec], ctx: CtxDep, me: PrincipalDep
) -> list[LabelOut]:
    """Add one or more labels (all or none)."""
    return [label_out(lab) for lab in svc.add_labels(ctx, me, project_id, body)]


@router.patch("/labels/{label_id}", response_model=LabelOut)
def update_label(label_id: int, body: LabelPatch, ctx: CtxDep, me: PrincipalDep) -> LabelOut:
    label = svc.update_label(
        ctx, me, label_id, name=body.name, color=body.color, description=body.description
    )
    return label_out(label)


@router.delete("/labels/{label_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_label(label_id: int, ctx: CtxDep, me: PrincipalDep) -> None:
    svc.delete_label(ctx, me, label_id)
