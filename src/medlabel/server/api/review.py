"""Review: the reviewer queue, decisions with comments pinned to the image, references."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from medlabel.annotation.content import Location
from medlabel.annotation.enums import AnnotationKind, CommentKind, ReviewDecision
from medlabel.server.api.annotations import AnnotationOut, RevisionOut, annotation_out, revision_out
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import review as svc

router = APIRouter(tags=["review"])


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=svc.MAX_COMMENT)
    location: Location | None = Field(
        default=None,
        description="Where on the image: voxel position (plane, row, column) and/or "
        "position_mm (LPS); the server fills in the other. Omit for the whole image.",
    )


class CommentOut(BaseModel):
    id: int
    annotation_id: int
    revision_id: int | None = Field(description="The revision the comment is about.")
    author_id: int | None
    author: str | None
    kind: CommentKind = Field(description="comment, or the decision it came with.")
    text: str
    location: Location | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    resolved_by: int | None


class ReviewIn(BaseModel):
    decision: ReviewDecision
    base_version: int = Field(description="The version you reviewed; a mismatch gives 409.")
    comments: list[CommentIn] = Field(
        default_factory=list,
        max_length=svc.MAX_COMMENTS,
        description="At least one to reject.",
    )


class ReviewOut(BaseModel):
    annotation: AnnotationOut
    comments: list[CommentOut] = Field(description="The comments stored with the decision.")


class ReviewItemOut(BaseModel):
    annotation_id: int
    kind: AnnotationKind
    image_id: int
    image_name: str
    reader_id: int | None
    reader: str | None
    submitted_at: dt.datetime | None
    version: int = Field(description="base_version for the review.")
    head_revision_id: int | None
    resubmitted: bool = Field(description="Rejected before and submitted again.")
    open_comments: int = Field(description="Unresolved comments on this annotation.")


class ReviewQueueOut(BaseModel):
    items: list[ReviewItemOut]
    total: int


class ReferenceOut(BaseModel):
    source: svc.ReferenceSource = Field(
        description="consensus (one approved consensus), readers (each approved reading), none."
    )
    annotation_ids: list[int]
    revisions: list[RevisionOut]


def comment_out(view: svc.CommentView) -> CommentOut:
    c = view.comment
    return CommentOut(
        id=c.id,
        annotation_id=c.annotation_id,
        revision_id=c.revision_id,
        author_id=c.author_id,
        author=view.author,
        kind=CommentKind(c.kind),
        text=c.text,
        location=Location.model_validate(c.location) if c.location else None,
        created_at=c.created_at,
        resolved_at=c.resolved_at,
        resolved_by=c.resolved_by,
    )


def _spec(body: CommentIn) -> svc.CommentSpec:
    return svc.CommentSpec(body.text, body.location)


@router.get("/projects/{project_id}/review-queue", response_model=ReviewQueueOut)
def review_queue(
    project_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
) -> ReviewQueueOut:
    """Submitted annotations waiting for review, oldest submission first (reviewers; your
    own readings are left out unless you are an admin)."""
    page = svc.review_queue(ctx, me, project_id, limit=limit, offset=offset)
    items = [
        ReviewItemOut(
            annotation_id=i.annotation.id,
            kind=AnnotationKind(i.annotation.kind),
            image_id=i.annotation.image_id,
            image_name=i.image_name,
            reader_id=i.annotation.owner_id,
            reader=i.reader,
            submitted_at=i.annotation.submitted_at,
            version=i.annotation.version,
            head_revision_id=i.annotation.head_revision_id,
            resubmitted=i.resubmitted,
            open_comments=i.open_comments,
        )
        for i in page.items
    ]
    return ReviewQueueOut(items=items, total=page.total)


@router.post("/annotations/{annotation_id}/review", response_model=ReviewOut)
def review(annotation_id: int, body: ReviewIn, ctx: CtxDep, me: PrincipalDep) -> ReviewOut:
    """Approve or reject a submitted annotation with comments, in one step (reviewers).
    Rejecting needs at least one comment and returns the work to its reader."""
    result = svc.review(
        ctx, me, annotation_id, body.decision, body.base_version, [_spec(c) for c in body.comments]
    )
    return ReviewOut(
        annotation=annotation_out(result.annotation),
        comments=[comment_out(c) for c in result.comments],
    )


@router.get("/annotations/{annotation_id}/comments", response_model=list[CommentOut])
def list_comments(annotation_id: int, ctx: CtxDep, me: PrincipalDep) -> list[CommentOut]:
    """The review comments of an annotation, oldest first."""
    return [comment_out(c) for c in svc.list_comments(ctx, me, annotation_id)]


@router.post(
    "/annotations/{annotation_id}/comments",
    response_model=CommentOut,
    status_code=status.HTTP_201_CREATED,
)
def add_comment(annotation_id: int, body: CommentIn, ctx: CtxDep, me: PrincipalDep) -> CommentOut:
    """Comment without deciding (the annotation's reader or a reviewer)."""
    return comment_out(svc.add_comment(ctx, me, annotation_id, _spec(body)))


@router.post("/comments/{comment_id}/resolve", response_model=CommentOut)
def resolve_comment(comment_id: int, ctx: CtxDep, me: PrincipalDep) -> CommentOut:
    """Mark a comment as dealt with (the annotation's reader or a reviewer)."""
    return comment_out(svc.resolve_comment(ctx, me, comment_id))


@router.get("/images/{image_id}/reference", response_model=ReferenceOut)
def reference(image_id: int, ctx: CtxDep, me: PrincipalDep) -> ReferenceOut:
    """The image's reference labels: its approved consensus, else each reader's approved
    revision (in a blinded project, reviewers only)."""
    ref = svc.get_reference(ctx, me, image_id)
    return ReferenceOut(
        source=ref.source,
        annotation_ids=[a.id for a in ref.annotations],
        revisions=[revision_out(r) for r in ref.revisions],
    )
