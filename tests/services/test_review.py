"""Review: decisions with pinned comments, returned work, the review queue, references."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from medlabel.annotation.content import Location
from medlabel.annotation.enums import AnnotationKind, AnnotationState, CommentKind
from medlabel.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from medlabel.services import annotations as ann_svc
from medlabel.services import assignments as queue_svc
from medlabel.services import images as images_svc
from medlabel.services import review as svc
from medlabel.services.assignments import QueueReason
from medlabel.services.context import Context
from medlabel.services.projects import update_project
from medlabel.services.review import CommentSpec, ReferenceSource
from medlabel.storage.db.models import Annotation, ReviewComment, Revision
from tests.services.reader_study import Study, make_study, read


@pytest.fixture
def study(ctx: Context) -> Study:
    return make_study(ctx)


def _comments(ctx: Context) -> int:
    with ctx.db.read() as s:
        return s.scalar(select(func.count()).select_from(ReviewComment)) or 0


# edge cases first ------------------------------------------------------------------------
def test_reject_needs_a_comment_both_ways(study: Study) -> None:
    ctx = study.ctx
    view = read(ctx, study.ann, study.image_ids[0])
    a = view.annotation
    with pytest.raises(InvalidInputError, match="at least one comment"):
        svc.review(ctx, study.rita, a.id, "reject", a.version)
    with pytest.raises(InvalidInputError, match="at least one comment"):
        ann_svc.transition(ctx, study.rita, a.id, "reject", a.version)
    with pytest.raises(InvalidInputError, match="empty"):
        svc.review(ctx, study.rita, a.id, "reject", a.version, [CommentSpec("   ")])
    with pytest.raises(InvalidInputError, match="unknown decision"):
        svc.review(ctx, study.rita, a.id, "maybe", a.version, [CommentSpec("x")])
    assert ann_svc.get_annotation(ctx, study.rita, a.id).annotation.state == "submitted"
    assert _comments(ctx) == 0


def test_a_bad_comment_stores_nothing(study: Study) -> None:
    ctx = study.ctx
    a = read(ctx, study.ann, study.image_ids[0]).annotation
    outside = CommentSpec("here", Location(position=(0, 9999, 0)))
    with pytest.raises(InvalidInputError, match="comment 1 lies outside the image"):
        svc.review(ctx, study.rita, a.id, "reject", a.version, [CommentSpec("ok"), outside])
    after = ann_svc.get_annotation(ctx, study.rita, a.id).annotation
    assert (after.state, after.version) == ("submitted", a.version)
    assert _comments(ctx) == 0


def test_stale_version_and_wrong_state_are_conflicts(study: Study) -> None:
    ctx = study.ctx
    draft = read(ctx, study.ann, study.image_ids[0], submit=False).annotation
    with pytest.raises(ConflictError, match="draft"):
        svc.review(ctx, study.rita, draft.id, "approve", draft.version)
    a = ann_svc.transition(ctx, study.ann, draft.id, "submit", draft.version).annotation
    with pytest.raises(ConflictError, match="since you loaded it"):
        svc.review(ctx, study.rita, a.id, "approve", a.version - 1)
    assert _comments(ctx) == 0


def test_who_may_review(study: Study) -> None:
    ctx = study.ctx
    theirs = read(ctx, study.ann, study.image_ids[0]).annotation
    # bob cannot even see ann's reading in a blinded study; unblinded he may not review
    with pytest.raises(NotFoundError):
        svc.review(ctx, study.bob, theirs.id, "approve", theirs.version)
    update_project(ctx, study.admin, study.project_id, blinded=False)
    with pytest.raises(PermissionDeniedError):
        svc.review(ctx, study.bob, theirs.id, "approve", theirs.version)
    own = read(ctx, study.rita, study.image_ids[1]).annotation
    with pytest.raises(PermissionDeniedError, match="your own"):
        svc.review(ctx, study.rita, own.id, "approve", own.version)
    with pytest.raises(PermissionDeniedError, match="your own"):
        ann_svc.transition(ctx, study.rita, own.id, "approve", own.version)
    # admins may review their own work
    mine = read(ctx, study.admin, study.image_ids[2]).annotation
    done = svc.review(ctx, study.admin, mine.id, "approve", mine.version)
    assert done.annotation.annotation.state == "approved"


# the workflow ----------------------------------------------------------------------------
def test_reject_with_pinned_comment_returns_work_first_then_approve(study: Study) -> None:
    ctx, pid, ids = study.ctx, study.project_id, study.image_ids
    queue_svc.assign(ctx, study.rita, pid, study.ann.id, ids)
    image = images_svc.get_image(ctx, study.ann, ids[0])
    first = read(ctx, study.ann, ids[0]).annotation
    other = read(ctx, study.bob, ids[0]).annotation

    page = svc.review_queue(ctx, study.rita, pid)
    assert page.total == 2
    assert [i.annotation.id for i in page.items] == [first.id, other.id]  # oldest first
    head = page.items[0]
    assert (head.reader, head.image_name, head.resubmitted) == ("ann", image.name, False)
    with pytest.raises(PermissionDeniedError):
        svc.review_queue(ctx, study.ann, pid)

    pin = Location(position=(0, 20, 30))
    result = svc.review(
        ctx,
        study.rita,
        first.id,
        "reject",
        first.version,
        [CommentSpec("the lesion extends further down", pin), CommentSpec("check the class")],
    )
    assert result.annotation.annotation.state == AnnotationState.REJECTED
    c = result.comments[0].comment
    assert c.kind == CommentKind.REJECT and c.revision_id == first.head_revision_id
    assert c.location is not None and c.location["position"] == [0.0, 20.0, 30.0]
    expected_mm = (np.asarray(image.affine) @ [0, 20, 30, 1])[:3]
    assert np.allclose(c.location["position_mm"], expected_mm, atol=1e-3)
    assert result.comments[1].comment.location is None
    assert [i.annotation.id for i in svc.review_queue(ctx, study.rita, pid).items] == [other.id]

    # the rejected reading comes first in ann's queue, before her assigned images
    owed = queue_svc.list_queue(ctx, study.ann, pid).items
    assert [(i.reason, i.image.id) for i in owed] == [
        (QueueReason.RETURNED, ids[0]),
        (QueueReason.ASSIGNED, ids[1]),
        (QueueReason.ASSIGNED, ids[2]),
    ]
    nxt = queue_svc.next_in_queue(ctx, study.ann, pid)
    assert nxt is not None and nxt.reason == QueueReason.RETURNED and nxt.image.id == ids[0]
    comments = svc.list_comments(ctx, study.ann, first.id)
    assert (comments[0].comment.text, comments[0].author) == (
        "the lesion extends further down",
        "rita",
    )

    # fixing it (a new revision makes it a draft) keeps it returned until resubmitted
    read(ctx, study.ann, ids[0], submit=False)
    nxt = queue_svc.next_in_queue(ctx, study.ann, pid)
    assert nxt is not None and nxt.reason == QueueReason.RETURNED
    resolved = svc.resolve_comment(ctx, study.ann, comments[0].comment.id)
    assert resolved.comment.resolved_at is not None
    again = svc.resolve_comment(ctx, study.rita, comments[0].comment.id)
    assert again.comment.resolved_at == resolved.comment.resolved_at
    fixed = read(ctx, study.ann, ids[0]).annotation  # saves once more and resubmits
    nxt = queue_svc.next_in_queue(ctx, study.ann, pid)
    assert nxt is not None and nxt.reason == QueueReason.ASSIGNED and nxt.image.id == ids[1]

    # back in the review queue, after the other reading, marked as resubmitted
    items = svc.review_queue(ctx, study.rita, pid).items
    assert [(i.annotation.id, i.resubmitted, i.open_comments) for i in items] == [
        (other.id, False, 0),
        (fixed.id, True, 1),
    ]
    ok = svc.review(ctx, study.rita, fixed.id, "approve", fixed.version, [CommentSpec("good")])
    assert ok.annotation.annotation.approved_revision_id == fixed.head_revision_id
    assert ok.comments[0].comment.kind == CommentKind.APPROVE

    # the approved revision is the reference
    with ctx.db.read() as s:
        ref = svc.reference_revisions(s, ids[0])
    assert ref.source == ReferenceSource.READERS
    assert [r.id for r in ref.revisions] == [fixed.head_revision_id]
    approved_other = svc.review(ctx, study.rita, other.id, "approve", other.version)
    with ctx.db.read() as s:
        ref = svc.reference_revisions(s, ids[0])
    assert [a.id for a in ref.annotations] == [fixed.id, other.id]
    assert approved_other.annotation.annotation.approved_revision_id in [
        r.id for r in ref.revisions
    ]


def test_comments_by_reader_and_reviewers_only(study: Study) -> None:
    ctx = study.ctx
    a = read(ctx, study.ann, study.image_ids[0], submit=False).annotation
    mine = svc.add_comment(ctx, study.ann, a.id, CommentSpec("unsure about the margin"))
    assert mine.comment.kind == CommentKind.COMMENT and mine.comment.revision_id is not None
    svc.add_comment(ctx, study.rita, a.id, CommentSpec("see slice 0", Location(position=(0, 1, 1))))
    assert len(svc.list_comments(ctx, study.rita, a.id)) == 2
    with pytest.raises(NotFoundError):  # blinded: bob does not see ann's reading at all
        svc.list_comments(ctx, study.bob, a.id)
    with pytest.raises(NotFoundError):
        svc.resolve_comment(ctx, study.bob, mine.comment.id)
    with pytest.raises(NotFoundError):
        svc.resolve_comment(ctx, study.rita, 99999)
    update_project(ctx, study.admin, study.project_id, blinded=False)
    assert len(svc.list_comments(ctx, study.bob, a.id)) == 2
    with pytest.raises(PermissionDeniedError):
        svc.add_comment(ctx, study.bob, a.id, CommentSpec("not mine to say"))
    with pytest.raises(PermissionDeniedError):
        svc.resolve_comment(ctx, study.bob, mine.comment.id)
    with pytest.raises(PermissionDeniedError):
        svc.add_comment(ctx, study.vic, a.id, CommentSpec("viewers only look"))


def test_consensus_is_the_reference_once_approved(study: Study) -> None:
    ctx, image_id = study.ctx, study.image_ids[0]
    with ctx.db.read() as s:
        assert svc.reference_revisions(s, image_id).source == ReferenceSource.NONE
    r = read(ctx, study.ann, image_id).annotation
    svc.review(ctx, study.rita, r.id, "approve", r.version)
    # a consensus annotation as the consensus service will store it: no owner
    with ctx.db.write() as s:
        cons = Annotation(
            project_id=study.project_id,
            image_id=image_id,
            owner_id=None,
            kind=AnnotationKind.CONSENSUS.value,
            state="submitted",
        )
        s.add(cons)
        s.flush()
        rev = Revision(annotation_id=cons.id, number=1, source="human", content={})
        s.add(rev)
        s.flush()
        cons.head_revision_id = rev.id
    with ctx.db.read() as s:
        assert svc.reference_revisions(s, image_id).source == ReferenceSource.READERS
    c = ann_svc.get_annotation(ctx, study.rita, cons.id).annotation
    assert [
        i.annotation.kind for i in svc.review_queue(ctx, study.rita, study.project_id).items
    ] == ["consensus"]
    svc.review(ctx, study.rita, c.id, "approve", c.version)
    with ctx.db.read() as s:
        ref = svc.reference_revisions(s, image_id)
    assert ref.source == ReferenceSource.CONSENSUS and [x.id for x in ref.revisions] == [rev.id]
    # consensus holds no reader slot and is hidden from blinded readers
    with ctx.db.read() as s:
        assert queue_svc.image_readers(s, image_id) == {study.ann.id}
    assert [v.annotation.id for v in ann_svc.list_annotations(ctx, study.ann, image_id)] == [r.id]
    with pytest.raises(PermissionDeniedError, match="blinded"):
        svc.get_reference(ctx, study.ann, image_id)
    assert svc.get_reference(ctx, study.rita, image_id).source == ReferenceSource.CONSENSUS
