"""The audit log covers reader studies, review comments, jobs and evaluations: each change
made through the real services writes exactly one row (right action, actor, project and
target), refused changes write none, details hold no typed text, and the chain verifies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import select

from medlabel.annotation.content import Location
from medlabel.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from medlabel.security.audit import AuditAction, Origin, origin_scope, verify_chain
from medlabel.services import annotations as ann_svc
from medlabel.services import assignments as assign_svc
from medlabel.services import evaluations as eval_svc
from medlabel.services import jobs as jobs_svc
from medlabel.services import review as review_svc
from medlabel.services.access import Principal
from medlabel.services.agreement import image_agreement, project_agreement
from medlabel.services.consensus import build_consensus
from medlabel.services.context import Context
from medlabel.services.images import get_image
from medlabel.services.projects import update_project
from medlabel.storage.db.models import Assignment, AuditEvent, Revision
from tests.jobs.conftest import CheckedParams, Probe, register_test_kinds
from tests.services.reader_study import Study, make_study, read

#: free text a user types; it may name the patient, so it never reaches the log
TYPED = "Mrs Jane Doe 1957-03-02 MRN 0042"


@pytest.fixture
def study(ctx: Context) -> Study:
    return make_study(ctx)


class Log:
    """The audit rows written since it was made (or since :meth:`mark`)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.mark()

    def _last(self) -> int:
        with self.ctx.db.read() as s:
            return max(s.scalars(select(AuditEvent.id)), default=0)

    def mark(self) -> None:
        self.since = self._last()

    def new(self) -> list[AuditEvent]:
        with self.ctx.db.read() as s:
            return list(
                s.scalars(
                    select(AuditEvent).where(AuditEvent.id > self.since).order_by(AuditEvent.id)
                )
            )

    def one(self, action: AuditAction, actor: Principal, project_id: int | None) -> AuditEvent:
        """The only row written since the mark; it must be ``action`` by ``actor``."""
        rows = self.new()
        assert [r.action for r in rows] == [action.value]
        (row,) = rows
        assert (row.actor_id, row.actor) == (actor.id, actor.username)
        assert row.project_id == project_id
        self.mark()
        return row

    def none(self) -> None:
        assert self.new() == []


def _check_log(ctx: Context, *typed: str) -> None:
    """The chain verifies, and no row's details hold any of the ``typed`` texts."""
    with ctx.db.read() as s:
        assert verify_chain(s).ok
        details = [json.dumps(e.details) for e in s.scalars(select(AuditEvent))]
    for text in (TYPED, *typed):
        for part in text.split():
            if len(part) > 3:
                assert not any(part in d for d in details), part


def _assignment(ctx: Context, image_id: int, user_id: int) -> int:
    with ctx.db.read() as s:
        found = s.scalar(
            select(Assignment.id).where(
                Assignment.image_id == image_id, Assignment.user_id == user_id
            )
        )
    assert found is not None
    return found


# projects --------------------------------------------------------------------------------
def test_project_update_names_study_settings_with_their_values(study: Study) -> None:
    ctx, pid = study.ctx, study.project_id
    log = Log(ctx)
    with pytest.raises(InvalidInputError):
        update_project(ctx, study.rita, pid, readers_per_image=0)
    log.none()
    update_project(ctx, study.rita, pid, readers_per_image=3, blinded=False)
    row = log.one(AuditAction.PROJECT_UPDATE, study.rita, pid)
    assert (row.target_type, row.target_id) == ("project", str(pid))
    assert row.details == {
        "changed": ["blinded", "readers_per_image"],
        "readers_per_image": 3,
        "blinded": False,
        "active_strategy": "order",
    }
    update_project(ctx, study.rita, pid, description=TYPED)
    row = log.one(AuditAction.PROJECT_UPDATE, study.rita, pid)
    assert row.details == {
        "changed": ["description"],
        "readers_per_image": 3,
        "blinded": False,
        "active_strategy": "order",
    }
    _check_log(ctx)


# assignments -----------------------------------------------------------------------------
def test_assign_unassign_reassign_and_distribute(study: Study) -> None:
    ctx, pid, ids = study.ctx, study.project_id, study.image_ids
    log = Log(ctx)
    assign_svc.assign(ctx, study.rita, pid, study.ann.id, ids)
    row = log.one(AuditAction.ASSIGNMENT_CREATE, study.rita, pid)
    assert (row.target_type, row.target_id) == ("user", str(study.ann.id))
    assert row.details == {"user_id": study.ann.id, "images": 3, "image_ids": ids}

    assign_svc.assign(ctx, study.rita, pid, study.ann.id, ids[:1])  # she reads it already
    log.none()
    assign_svc.assign(ctx, study.rita, pid, study.bob.id, ids[:1])
    log.one(AuditAction.ASSIGNMENT_CREATE, study.rita, pid)
    with pytest.raises(ConflictError):  # image 0 has its two readers: nothing is stored
        assign_svc.assign(ctx, study.rita, pid, study.cy.id, ids)
    log.none()

    first = _assignment(ctx, ids[0], study.ann.id)
    assign_svc.unassign(ctx, study.rita, first)
    row = log.one(AuditAction.ASSIGNMENT_REMOVE, study.rita, pid)
    assert (row.target_type, row.target_id) == ("assignment", str(first))
    assert row.details == {"image_id": ids[0], "user_id": study.ann.id}

    started = read(ctx, study.ann, ids[1], submit=False).annotation
    log.mark()
    second = _assignment(ctx, ids[1], study.ann.id)
    assign_svc.reassign(ctx, study.rita, second, study.ann.id)  # to herself: no change
    log.none()
    assign_svc.reassign(ctx, study.rita, second, study.cy.id)
    row = log.one(AuditAction.ASSIGNMENT_REASSIGN, study.rita, pid)
    assert (row.target_type, row.target_id) == ("assignment", str(second))
    assert row.details == {
        "image_id": ids[1],
        "from_user_id": study.ann.id,
        "to_user_id": study.cy.id,
        "annotation_id": started.id,
    }

    result = assign_svc.distribute(ctx, study.rita, pid)
    row = log.one(AuditAction.ASSIGNMENT_DISTRIBUTE, study.rita, pid)
    assert (row.target_type, row.target_id) == ("project", str(pid))
    assert row.details == {
        "assignments": len(result.created),
        "images": len({v.assignment.image_id for v in result.created}),
        "readers": len({v.assignment.user_id for v in result.created}),
        "short_images": len(result.short_images),
    }
    assert row.details["assignments"] > 0
    assign_svc.distribute(ctx, study.rita, pid)  # every slot is given: nothing changes
    log.none()
    _check_log(ctx)


def test_claims_through_the_queue_and_the_first_save(study: Study) -> None:
    ctx, pid, ids = study.ctx, study.project_id, study.image_ids
    log = Log(ctx)
    with origin_scope(Origin(client="10.20.30.40")):
        item = assign_svc.next_in_queue(ctx, study.ann, pid)
    assert item is not None and item.assignment is not None
    row = log.one(AuditAction.ASSIGNMENT_CLAIM, study.ann, pid)
    assert (row.target_type, row.target_id) == ("assignment", str(item.assignment.id))
    assert row.details == {"image_id": item.image.id, "user_id": study.ann.id, "via": "queue"}
    assert row.client == "10.20.30.40"
    assign_svc.next_in_queue(ctx, study.ann, pid)  # she owes that image: no new claim
    log.none()

    # saving an image outside the queue takes its free slot, in the save's transaction
    view = read(ctx, study.bob, ids[2], submit=False)
    rows = log.new()
    assert [r.action for r in rows] == ["assignment.claim", "annotation.save"]
    assert all(r.actor_id == study.bob.id and r.project_id == pid for r in rows)
    claim = rows[0]
    assert claim.target_id == str(_assignment(ctx, ids[2], study.bob.id))
    assert claim.details == {"image_id": ids[2], "user_id": study.bob.id, "via": "save"}
    assert rows[1].target_id == str(view.annotation.id)
    log.mark()

    read(ctx, study.ann, ids[2], submit=False)  # the second slot
    log.mark()
    with pytest.raises(ConflictError):  # full: neither the claim nor the save is kept
        read(ctx, study.cy, ids[2], submit=False)
    log.none()
    _check_log(ctx)


# review ----------------------------------------------------------------------------------
def test_comments_and_resolutions_without_their_text(study: Study) -> None:
    ctx, pid, ids = study.ctx, study.project_id, study.image_ids
    reading = read(ctx, study.ann, ids[0]).annotation
    log = Log(ctx)
    with pytest.raises(InvalidInputError):
        review_svc.add_comment(ctx, study.rita, reading.id, review_svc.CommentSpec("  "))
    log.none()
    pinned = review_svc.add_comment(
        ctx, study.rita, reading.id, review_svc.CommentSpec(TYPED, Location(position=(0, 5, 6)))
    ).comment
    row = log.one(AuditAction.REVIEW_COMMENT, study.rita, pid)
    assert (row.target_type, row.target_id) == ("comment", str(pinned.id))
    assert row.details == {
        "annotation_id": reading.id,
        "revision_id": reading.head_revision_id,
        "kind": "comment",
        "pinned": True,
    }
    reply = review_svc.add_comment(
        ctx, study.ann, reading.id, review_svc.CommentSpec("see my notes, patient Jane")
    ).comment
    row = log.one(AuditAction.REVIEW_COMMENT, study.ann, pid)
    assert row.details["pinned"] is False and row.target_id == str(reply.id)

    review_svc.resolve_comment(ctx, study.ann, pinned.id)
    row = log.one(AuditAction.REVIEW_RESOLVE, study.ann, pid)
    assert (row.target_type, row.target_id) == ("comment", str(pinned.id))
    assert row.details == {"annotation_id": reading.id, "kind": "comment"}
    review_svc.resolve_comment(ctx, study.rita, pinned.id)  # already resolved
    log.none()
    with pytest.raises(NotFoundError):  # another reader, in a blinded project
        review_svc.resolve_comment(ctx, study.bob, reply.id)
    log.none()

    # a decision with comments is one annotation.reject row (from apply_transition),
    # not one row per comment
    review_svc.review(
        ctx,
        study.rita,
        reading.id,
        "reject",
        reading.version,
        [review_svc.CommentSpec("redo the margin " + TYPED), review_svc.CommentSpec("class?")],
    )
    row = log.one(AuditAction.ANNOTATION_REJECT, study.rita, pid)
    assert row.details == {"revision_id": reading.head_revision_id, "comments": 2}
    _check_log(ctx, "see my notes, patient Jane", "redo the margin")


# jobs ------------------------------------------------------------------------------------
@pytest.fixture
def probe(ctx: Context) -> Probe:
    p = Probe()
    register_test_kinds(ctx.job_kinds, p)
    return p


def test_job_submit_cancel_and_retry(study: Study, probe: Probe) -> None:
    ctx, pid = study.ctx, study.project_id
    log = Log(ctx)
    with pytest.raises(InvalidInputError):  # the kind's check refuses: nothing stored
        jobs_svc.submit_job(ctx, study.rita, "test.project", {"ok": False}, project_id=pid)
    with pytest.raises(PermissionDeniedError):
        jobs_svc.submit_job(ctx, study.ann, "test.project", project_id=pid)
    log.none()

    view = jobs_svc.submit_job(
        ctx, study.rita, "test.project", CheckedParams().model_dump(), project_id=pid
    )
    job_id = view.job.id
    row = log.one(AuditAction.JOB_SUBMIT, study.rita, pid)
    assert (row.target_type, row.target_id) == ("job", str(job_id))
    assert row.details == {"kind": "test.project", "foreground": False}

    jobs_svc.cancel_job(ctx, study.rita, job_id)
    row = log.one(AuditAction.JOB_CANCEL, study.rita, pid)
    assert row.target_id == str(job_id)
    assert row.details == {"kind": "test.project", "was": "queued", "state": "cancelled"}
    with pytest.raises(ConflictError):
        jobs_svc.cancel_job(ctx, study.rita, job_id)
    log.none()

    jobs_svc.retry_job(ctx, study.rita, job_id)
    row = log.one(AuditAction.JOB_RETRY, study.rita, pid)
    assert row.target_id == str(job_id)
    assert row.details == {"kind": "test.project", "attempt": 2}
    with pytest.raises(ConflictError):  # queued again: nothing to retry
        jobs_svc.retry_job(ctx, study.rita, job_id)
    log.none()

    # a foreground run (the CLI's) is submitted too; the operator is the actor
    done = jobs_svc.run_in_foreground(ctx, None, "test.steps", {"steps": 2})
    assert done.job.state == "succeeded"
    rows = log.new()
    assert [r.action for r in rows] == ["job.submit"]
    assert rows[0].actor_id is None and rows[0].project_id is None
    assert rows[0].details == {"kind": "test.steps", "foreground": True}
    _check_log(ctx)


# evaluations, consensus, agreement -------------------------------------------------------
def _approved_readings(study: Study) -> int:
    """Ann and Bob read the first image differently; Rita approves both readings."""
    ctx, image = study.ctx, study.image_ids[0]
    shape = list(get_image(ctx, study.admin, image).shape)
    for k, who in enumerate((study.ann, study.bob)):
        mask = np.zeros(shape[:3], np.uint8)
        mask[0, 5 + k : 20, 5:20] = 1
        view = read(ctx, who, image, mask=mask)
        ann_svc.transition(ctx, study.rita, view.annotation.id, "approve", view.annotation.version)
    return image


@pytest.fixture
def evaluated(ctx: Context) -> Iterator[Study]:
    study = make_study(ctx, readers_per_image=2, blinded=False)
    _approved_readings(study)
    yield study


def test_evaluation_create_and_every_report_read(evaluated: Study) -> None:
    study = evaluated
    ctx, pid = study.ctx, study.project_id
    log = Log(ctx)
    with pytest.raises(PermissionDeniedError):
        eval_svc.run_evaluation(
            ctx, study.ann, pid, eval_svc.EvaluationRequest(subject="reader", user_id=study.bob.id)
        )
    with pytest.raises(InvalidInputError):  # nothing to evaluate
        eval_svc.run_evaluation(
            ctx, study.rita, pid, eval_svc.EvaluationRequest(subject="engine", engine_name=TYPED)
        )
    log.none()

    request = eval_svc.EvaluationRequest(subject="reader", user_id=study.ann.id)
    evaluation = eval_svc.run_evaluation(ctx, study.rita, pid, request)
    row = log.one(AuditAction.EVALUATION_CREATE, study.rita, pid)
    assert (row.target_type, row.target_id) == ("evaluation", str(evaluation.id))
    assert row.details == {"subject": "reader", "user_id": study.ann.id, "cases": 1, "skipped": 0}

    with pytest.raises(PermissionDeniedError):  # readers do not see evaluations
        eval_svc.report_html(ctx, study.ann, evaluation.id)
    log.none()
    assert eval_svc.report_html(ctx, study.rita, evaluation.id).startswith(b"<!")
    assert eval_svc.report_json(ctx, study.admin, evaluation.id)["summary"]
    eval_svc.report_html(ctx, study.rita, evaluation.id)
    rows = log.new()
    assert [(r.action, r.actor, r.details["format"]) for r in rows] == [
        ("evaluation.read", "rita", "html"),
        ("evaluation.read", "admin", "json"),
        ("evaluation.read", "rita", "html"),
    ]
    assert {(r.target_type, r.target_id, r.project_id) for r in rows} == {
        ("evaluation", str(evaluation.id), pid)
    }
    # listing evaluations and their summaries is not a read of the report
    log.mark()
    eval_svc.list_evaluations(ctx, study.rita, pid)
    eval_svc.get_evaluation(ctx, study.rita, evaluation.id)
    log.none()
    _check_log(ctx)


def test_consensus_is_an_engine_save_and_agreement_reads_are_not_recorded(
    evaluated: Study,
) -> None:
    study = evaluated
    ctx, pid, image = study.ctx, study.project_id, study.image_ids[0]
    log = Log(ctx)
    image_agreement(ctx, study.rita, image)
    project_agreement(ctx, study.rita, pid)
    log.none()

    result = build_consensus(ctx, study.rita, image, method="majority")
    row = log.one(AuditAction.ANNOTATION_SAVE, study.rita, pid)
    assert (row.target_type, row.target_id) == ("annotation", str(result.view.annotation.id))
    assert row.details["source"] == "engine" and row.details["image_id"] == image
    with ctx.db.read() as s:
        revision = s.get(Revision, row.details["revision_id"])
        assert revision is not None and revision.engine_name == "consensus.majority"

    # the consensus (an engine's work) evaluated against the approved readings: the
    # engine is named in the stored report, not in the log
    request = eval_svc.EvaluationRequest(subject="engine", engine_name="consensus.majority")
    eval_svc.run_evaluation(ctx, study.rita, pid, request)
    row = log.one(AuditAction.EVALUATION_CREATE, study.rita, pid)
    assert row.details == {"subject": "engine", "user_id": None, "cases": 1, "skipped": 0}
    _check_log(ctx, "consensus.majority")
