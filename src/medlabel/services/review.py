"""Review of submitted readings: the reviewer queue, decisions with pinned comments, and
the reference labels of an image.

Rules:

- A review approves or rejects a *submitted* annotation at the version the reviewer saw;
  the decision and its comments are stored in one transaction. A rejection needs at
  least one comment; the annotation returns to its reader, first in their queue, until
  they resubmit it.
- Reviewers may not review their own readings; admins may (small teams, demos).
- Comments refer to the revision that was the head when they were written, and may be
  pinned to a voxel ``(plane, row, column)`` with its LPS position in mm (the convention
  of :mod:`medlabel.annotation.content`). The reader and reviewers comment and resolve.
- The reference of an image (:func:`reference_revisions`) is its approved consensus
  annotation if there is one, else the approved revisions of its readers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from medlabel.annotation.content import Location, normalize_location
from medlabel.annotation.enums import (
    AnnotationKind,
    AnnotationState,
    CommentKind,
    ReviewDecision,
)
from medlabel.core.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from medlabel.core.ids import utcnow
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, require_project
from medlabel.services.annotations import (
    AnnotationView,
    Transition,
    _annotation,
    _view,
    apply_transition,
    sees_all_readings,
)
from medlabel.services.context import Context
from medlabel.storage.db.models import Annotation, Image, ReviewComment, Revision, User

log = logging.getLogger(__name__)

MAX_COMMENT = 10_000
MAX_COMMENTS = 200


@dataclass(frozen=True)
class CommentSpec:
    """A comment as given: text and an optional location on the image."""

    text: str
    location: Location | None = None


@dataclass
class CommentView:
    comment: ReviewComment
    author: str | None


@dataclass
class ReviewResult:
    annotation: AnnotationView
    comments: list[CommentView]


@dataclass
class ReviewItem:
    annotation: Annotation
    image_name: str
    reader: str | None
    #: it was rejected before and has been resubmitted
    resubmitted: bool
    open_comments: int


@dataclass
class ReviewPage:
    items: list[ReviewItem]
    total: int


class ReferenceSource(StrEnum):
    """Where an image's reference labels come from."""

    CONSENSUS = "consensus"
    READERS = "readers"
    NONE = "none"


@dataclass
class Reference:
    source: ReferenceSource
    #: the reference revisions: one consensus revision, or one per approved reader
    revisions: list[Revision]
    #: the annotations they belong to (same order)
    annotations: list[Annotation]


# comments --------------------------------------------------------------------------------
def _checked(s: Session, ann: Annotation, specs: Sequence[CommentSpec]) -> list[CommentSpec]:
    """Comments with their text trimmed and locations checked against the image."""
    if len(specs) > MAX_COMMENTS:
        raise InvalidInputError(f"at most {MAX_COMMENTS} comments per request")
    image = s.get(Image, ann.image_id)
    assert image is not None
    out = []
    for i, spec in enumerate(specs):
        text = spec.text.strip()
        if not text:
            raise InvalidInputError(f"comment {i} is empty; write what the reader should fix")
        if len(text) > MAX_COMMENT:
            raise InvalidInputError(f"comment {i} is longer than {MAX_COMMENT} characters")
        location = None
        if spec.location is not None:
            location = normalize_location(
                spec.location,
                shape=image.shape,
                affine=np.asarray(image.affine),
                what=f"comment {i}",
            )
        out.append(CommentSpec(text, location))
    return out


def _store(
    s: Session, actor: Principal, ann: Annotation, specs: Sequence[CommentSpec], kind: CommentKind
) -> list[CommentView]:
    rows = [
        ReviewComment(
            annotation_id=ann.id,
            revision_id=ann.head_revision_id,
            author_id=actor.id,
            kind=kind.value,
            text=spec.text,
            location=spec.location.model_dump(mode="json") if spec.location else None,
        )
        for spec in specs
    ]
    s.add_all(rows)
    s.flush()
    return [CommentView(row, actor.username) for row in rows]


def _may_comment(s: Session, actor: Principal, ann: Annotation) -> None:
    """The annotation's reader and the project's reviewers take part in its review."""
    if ann.owner_id != actor.id:
        require_project(s, actor, ann.project_id, ProjectRole.REVIEWER)


def list_comments(ctx: Context, actor: Principal, annotation_id: int) -> list[CommentView]:
    """An annotation's review comments, oldest first (for whoever may see it)."""
    with ctx.db.read() as s:
        _annotation(s, actor, annotation_id, ProjectRole.VIEWER)
        rows = s.execute(
            select(ReviewComment, User.username)
            .outerjoin(User, User.id == ReviewComment.author_id)
            .where(ReviewComment.annotation_id == annotation_id)
            .order_by(ReviewComment.created_at, ReviewComment.id)
        ).all()
        return [CommentView(c, name) for c, name in rows]


def add_comment(
    ctx: Context, actor: Principal, annotation_id: int, spec: CommentSpec
) -> CommentView:
    """Comment on an annotation without deciding (its reader or a reviewer)."""
    with ctx.db.write() as s:
        ann = _annotation(s, actor, annotation_id, ProjectRole.ANNOTATOR)
        _may_comment(s, actor, ann)
        (view,) = _store(s, actor, ann, _checked(s, ann, [spec]), CommentKind.COMMENT)
        comment = view.comment
        audit.record(  # never the comment's text: readers may name the patient in it
            s,
            actor,
            AuditAction.REVIEW_COMMENT,
            target_type="comment",
            target_id=comment.id,
            project_id=ann.project_id,
            details={
                "annotation_id": ann.id,
                "revision_id": comment.revision_id,
                "kind": comment.kind,
                "pinned": comment.location is not None,
            },
        )
        return view


def resolve_comment(ctx: Context, actor: Principal, comment_id: int) -> CommentView:
    """Mark a comment as dealt with (the annotation's reader or a reviewer); resolving a
    resolved comment changes nothing."""
    with ctx.db.write() as s:
        row = s.get(ReviewComment, comment_id)
        if row is None:
            raise NotFoundError(f"comment {comment_id} not found")
        ann = _annotation(s, actor, row.annotation_id, ProjectRole.ANNOTATOR)
        _may_comment(s, actor, ann)
        if row.resolved_at is None:
            row.resolved_at = utcnow()
            row.resolved_by = actor.id
            s.flush()
            audit.record(
                s,
                actor,
                AuditAction.REVIEW_RESOLVE,
                target_type="comment",
                target_id=row.id,
                project_id=ann.project_id,
                details={"annotation_id": ann.id, "kind": row.kind},
            )
        author = s.get(User, row.author_id) if row.author_id else None
        return CommentView(row, author.username if author else None)


# decisions -------------------------------------------------------------------------------
def review(
    ctx: Context,
    actor: Principal,
    annotation_id: int,
    decision: ReviewDecision | str,
    base_version: int | None,
    comments: Sequence[CommentSpec] = (),
) -> ReviewResult:
    """Approve or reject a submitted annotation, with comments, in one transaction.

    Approval makes the head revision the reader's approved (reference) revision.
    Rejection returns the annotation to its reader with the comments.

    Raises
    ------
    InvalidInputError
        Unknown decision, a rejection without comments, an empty comment or a location
        outside the image.
    ConflictError
        ``base_version`` is stale, or the annotation is not submitted.
    PermissionDeniedError
        The actor is not a reviewer, or reviews their own reading without being admin.
    """
    try:
        decision = ReviewDecision(decision)
    except ValueError:
        raise InvalidInputError(
            f"unknown decision {decision!r}; use one of {[d.value for d in ReviewDecision]}"
        ) from None
    with ctx.db.write() as s:
        ann = _annotation(s, actor, annotation_id, ProjectRole.ANNOTATOR)
        specs = _checked(s, ann, comments)
        apply_transition(
            s, actor, ann, Transition(decision.value), base_version, comments=len(specs)
        )
        stored = _store(s, actor, ann, specs, CommentKind(decision.value))
        result = ReviewResult(_view(s, ann), stored)
    log.info("annotation id=%s %sd by user id=%s", annotation_id, decision.value, actor.id)
    return result


def review_queue(
    ctx: Context, actor: Principal, project_id: int, *, limit: int = 100, offset: int = 0
) -> ReviewPage:
    """Submitted annotations waiting for review, oldest submission first (reviewers).

    A reviewer's own readings are left out unless they are an admin (see the rules
    above)."""
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInputError("limit must be within 1..1000 and offset non-negative")
    with ctx.db.read() as s:
        require_project(s, actor, project_id, ProjectRole.REVIEWER)
        stmt = (
            select(Annotation, Image.name, User.username)
            .join(Image, Image.id == Annotation.image_id)
            .outerjoin(User, User.id == Annotation.owner_id)
            .where(
                Annotation.project_id == project_id,
                Annotation.state == AnnotationState.SUBMITTED.value,
            )
        )
        if not actor.is_admin:
            stmt = stmt.where(or_(Annotation.owner_id.is_(None), Annotation.owner_id != actor.id))
        total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = list(
            s.execute(
                stmt.order_by(
                    func.coalesce(Annotation.submitted_at, Annotation.updated_at), Annotation.id
                )
                .limit(limit)
                .offset(offset)
            ).all()
        )
        ids = [a.id for a, _, _ in rows]
        rejected = set(
            s.scalars(
                select(ReviewComment.annotation_id).where(
                    ReviewComment.annotation_id.in_(ids),
                    ReviewComment.kind == CommentKind.REJECT.value,
                )
            )
        )
        open_counts = dict(
            s.execute(
                select(ReviewComment.annotation_id, func.count())
                .where(ReviewComment.annotation_id.in_(ids), ReviewComment.resolved_at.is_(None))
                .group_by(ReviewComment.annotation_id)
            ).all()
        )
    items = [
        ReviewItem(a, name, reader, a.id in rejected, open_counts.get(a.id, 0))
        for a, name, reader in rows
    ]
    return ReviewPage(items, total)


# reference -------------------------------------------------------------------------------
def reference_revisions(s: Session, image_id: int) -> Reference:
    """The reference labels of an image (no permission check; inside any session).

    The latest approved consensus annotation if the image has one; otherwise the approved
    revision of each reader who has one (ordered by annotation id); otherwise none. An
    approved revision stays the reference after its annotation is reopened, until a
    newer revision is approved.
    """
    consensus = s.scalar(
        select(Annotation)
        .where(
            Annotation.image_id == image_id,
            Annotation.kind == AnnotationKind.CONSENSUS.value,
            Annotation.approved_revision_id.is_not(None),
        )
        .order_by(Annotation.updated_at.desc(), Annotation.id.desc())
        .limit(1)
    )
    if consensus is not None:
        anns = [consensus]
        source = ReferenceSource.CONSENSUS
    else:
        anns = list(
            s.scalars(
                select(Annotation)
                .where(
                    Annotation.image_id == image_id,
                    Annotation.kind == AnnotationKind.READER.value,
                    Annotation.approved_revision_id.is_not(None),
                )
                .order_by(Annotation.id)
            )
        )
        source = ReferenceSource.READERS if anns else ReferenceSource.NONE
    revs = {
        r.id: r
        for r in s.scalars(
            select(Revision).where(Revision.id.in_([a.approved_revision_id for a in anns]))
        )
    }
    pairs = [(a, revs[a.approved_revision_id]) for a in anns if a.approved_revision_id in revs]
    return Reference(source, [r for _, r in pairs], [a for a, _ in pairs])


def get_reference(ctx: Context, actor: Principal, image_id: int) -> Reference:
    """:func:`reference_revisions` for project members; in a blinded project only
    reviewers see it (it is made of other readers' work)."""
    with ctx.db.read() as s:
        image = s.get(Image, image_id)
        if image is None:
            raise NotFoundError(f"image {image_id} not found")
        project = require_project(s, actor, image.project_id)
        if not sees_all_readings(s, actor, project):
            raise PermissionDeniedError(
                f"project {project.name!r} is blinded: only reviewers see the reference labels"
            )
        return reference_revisions(s, image_id)


__all__ = [
    "CommentSpec",
    "CommentView",
    "Reference",
    "ReferenceSource",
    "ReviewItem",
    "ReviewPage",
    "ReviewResult",
    "add_comment",
    "get_reference",
    "list_comments",
    "reference_revisions",
    "resolve_comment",
    "review",
    "review_queue",
]
