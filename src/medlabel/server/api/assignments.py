"""Reader studies: your queue of images to read, assignments (reviewers) and progress."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from medlabel.annotation.enums import AnnotationState
from medlabel.security.roles import ProjectRole
from medlabel.server.api.images import ImageOut, image_out
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import assignments as svc
from medlabel.services import study_progress as progress_svc

router = APIRouter(tags=["reader studies"])


class QueueItemOut(BaseModel):
    image: ImageOut
    reason: svc.QueueReason = Field(
        description="returned (rejected, fix it), assigned (yours, not submitted), or new "
        "(just assigned to you)."
    )
    annotation_id: int | None = Field(description="Your annotation of the image, if started.")
    annotation_state: AnnotationState | None
    annotation_version: int | None = Field(description="base_version for your next save.")
    assignment_id: int | None


class QueueOut(BaseModel):
    items: list[QueueItemOut] = Field(description="Returned work first, then assigned work.")
    open_images: int = Field(description="Images still needing readers that you could claim.")


class AssignmentOut(BaseModel):
    id: int
    project_id: int
    image_id: int
    image_name: str
    user_id: int
    username: str
    assigned_by: int | None
    assigned_at: dt.datetime
    annotation_id: int | None = Field(description="The reader's annotation, if started.")
    state: AnnotationState | None = Field(description="Its state, if started.")


class AssignIn(BaseModel):
    user_id: int
    image_ids: list[int] = Field(min_length=1, max_length=10_000)


class ReassignIn(BaseModel):
    user_id: int = Field(description="The new reader.")


class DistributeIn(BaseModel):
    user_ids: list[int] | None = Field(
        default=None,
        max_length=1000,
        description="Readers to deal to; default: the project's annotators.",
    )


class DistributeOut(BaseModel):
    created: list[AssignmentOut]
    short_images: list[int] = Field(
        description="Images still short of readers (too few eligible readers)."
    )


class UserProgressOut(BaseModel):
    user_id: int
    username: str
    role: ProjectRole | None = Field(description="None: no longer a member.")
    assigned: int = Field(description="Images this user reads.")
    not_started: int
    started: int = Field(description="Draft readings (not returned).")
    submitted: int
    approved: int
    rejected: int = Field(description="Returned by a reviewer and not resubmitted yet.")
    remaining: int = Field(description="assigned - submitted - approved.")


class ProgressOut(BaseModel):
    readers_per_image: int
    images: int
    images_complete: int = Field(
        description="Images with readers_per_image submitted or approved readings."
    )
    images_approved: int = Field(
        description="Images with readers_per_image approved readings or an approved consensus."
    )
    open_slots: int = Field(description="Reader slots nobody holds yet.")
    users: list[UserProgressOut] = Field(description="Everyone for reviewers, else only you.")


def _queue_item(item: svc.QueueItem) -> QueueItemOut:
    ann = item.annotation
    return QueueItemOut(
        image=image_out(item.image),
        reason=item.reason,
        annotation_id=ann.id if ann else None,
        annotation_state=AnnotationState(ann.state) if ann else None,
        annotation_version=ann.version if ann else None,
        assignment_id=item.assignment.id if item.assignment else None,
    )


def _assignment_out(view: svc.AssignmentView) -> AssignmentOut:
    a = view.assignment
    return AssignmentOut(
        id=a.id,
        project_id=a.project_id,
        image_id=a.image_id,
        image_name=view.image_name,
        user_id=a.user_id,
        username=view.username,
        assigned_by=a.assigned_by,
        assigned_at=a.assigned_at,
        annotation_id=view.annotation_id,
        state=view.state,
    )


@router.get("/projects/{project_id}/queue", response_model=QueueOut)
def list_queue(project_id: int, ctx: CtxDep, me: PrincipalDep) -> QueueOut:
    """What you still owe in this project; claims nothing."""
    view = svc.list_queue(ctx, me, project_id)
    return QueueOut(items=[_queue_item(i) for i in view.items], open_images=view.open_images)


@router.post(
    "/projects/{project_id}/queue/next",
    response_model=QueueItemOut | None,
    responses={204: {"description": "Nothing left for you to read."}},
)
def next_in_queue(project_id: int, ctx: CtxDep, me: PrincipalDep) -> QueueItemOut | Response:
    """Your next image: returned work, then assigned work; if you owe nothing, an image
    that still needs readers is assigned to you (atomically)."""
    item = svc.next_in_queue(ctx, me, project_id)
    return _queue_item(item) if item else Response(status_code=204)


@router.get("/projects/{project_id}/assignments", response_model=list[AssignmentOut])
def list_assignments(
    project_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    user_id: int | None = None,
    image_id: int | None = None,
) -> list[AssignmentOut]:
    """Assignments, optionally of one user or image (annotators see only their own)."""
    views = svc.list_assignments(ctx, me, project_id, user_id=user_id, image_id=image_id)
    return [_assignment_out(v) for v in views]


@router.post(
    "/projects/{project_id}/assignments",
    response_model=list[AssignmentOut],
    status_code=status.HTTP_201_CREATED,
)
def assign(project_id: int, body: AssignIn, ctx: CtxDep, me: PrincipalDep) -> list[AssignmentOut]:
    """Assign images to a reader (reviewers; all or none). Returns the reader's
    assignments of those images, including ones they had already."""
    views = svc.assign(ctx, me, project_id, body.user_id, body.image_ids)
    return [_assignment_out(v) for v in views]


@router.post("/projects/{project_id}/assignments/distribute", response_model=DistributeOut)
def distribute(project_id: int, body: DistributeIn, ctx: CtxDep, me: PrincipalDep) -> DistributeOut:
    """Fill every image's free reader slots, spreading images evenly (reviewers)."""
    result = svc.distribute(ctx, me, project_id, body.user_ids)
    return DistributeOut(
        created=[_assignment_out(v) for v in result.created], short_images=result.short_images
    )


@router.delete("/assignments/{assignment_id}", status_code=status.HTTP_204_NO_CONTENT)
def unassign(assignment_id: int, ctx: CtxDep, me: PrincipalDep) -> None:
    """Remove an assignment that has not been started (reviewers); 409 if started."""
    svc.unassign(ctx, me, assignment_id)


@router.post("/assignments/{assignment_id}/reassign", response_model=AssignmentOut)
def reassign(assignment_id: int, body: ReassignIn, ctx: CtxDep, me: PrincipalDep) -> AssignmentOut:
    """Give an unfinished assignment to another reader (reviewers). Started work (draft
    or returned) moves with it; submitted or approved work cannot be reassigned (409)."""
    return _assignment_out(svc.reassign(ctx, me, assignment_id, body.user_id))


@router.get("/projects/{project_id}/progress", response_model=ProgressOut)
def progress(
    project_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    user_id: int | None = Query(default=None, description="Only this user's row."),
) -> ProgressOut:
    """Reading progress per user and for the project."""
    p = progress_svc.progress(ctx, me, project_id)
    users = [
        UserProgressOut(
            user_id=u.user_id,
            username=u.username,
            role=u.role,
            assigned=u.assigned,
            not_started=u.not_started,
            started=u.started,
            submitted=u.submitted,
            approved=u.approved,
            rejected=u.rejected,
            remaining=u.remaining,
        )
        for u in p.users
        if user_id is None or u.user_id == user_id
    ]
    return ProgressOut(
        readers_per_image=p.readers_per_image,
        images=p.images,
        images_complete=p.images_complete,
        images_approved=p.images_approved,
        open_slots=p.open_slots,
        users=users,
    )
