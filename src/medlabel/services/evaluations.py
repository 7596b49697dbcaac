"""Evaluation reports inside a project: one reader, or one engine, against the reference.

The reference of an image is its approved consensus, or else its approved readings
(:func:`medlabel.services.review.reference_revisions`) — without the evaluated reader's
own, which cannot be its own reference; several remaining readings are combined by a
majority vote (ties to background). Images without a reference, or that the subject did
not label, are left out; images where the subject's mask is missing are scored as empty.
The report is the one ``medlabel eval`` writes (:mod:`medlabel.quality.report`), stored
in the blob store and listed per project.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from medlabel.annotation.enums import AnnotationKind, LabelKind
from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.quality.report import Case, ReportOptions, SkippedCase, Sources, build_report
from medlabel.quality.voting import majority_vote
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, require_project
from medlabel.services.agreement import spacing_of
from medlabel.services.annotations import load_mask
from medlabel.services.blobrefs import unit_of_work
from medlabel.services.context import Context
from medlabel.services.review import reference_revisions
from medlabel.storage.db.models import (
    Annotation,
    Evaluation,
    Image,
    Label,
    ProjectMember,
    Revision,
    User,
)


class EvaluationRequest(BaseModel):
    """What to evaluate against the project's reference."""

    subject: Literal["reader", "engine"] = Field(
        description="A reader's annotations, or the revisions an engine (model) made."
    )
    user_id: int | None = Field(default=None, description="The reader (subject 'reader').")
    engine_name: str | None = Field(
        default=None, max_length=100, description="The engine (subject 'engine')."
    )
    which: Literal["latest", "approved"] = Field(
        default="latest", description="The reader's latest or last approved revision."
    )
    tolerance_mm: float = Field(default=1.0, gt=0, le=100)
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _subject_named(self) -> EvaluationRequest:
        if self.subject == "reader" and self.user_id is None:
            raise ValueError("give user_id: the reader to evaluate")
        if self.subject == "engine" and not self.engine_name:
            raise ValueError("give engine_name: the engine to evaluate")
        return self


@dataclass
class _Prepared:
    subject: dict[str, Any]
    label_names: dict[int, str]
    cases: list[tuple[str, Image, Revision, list[Revision], str]]


def _subject_revision(s: Session, image_id: int, request: EvaluationRequest) -> Revision | None:
    if request.subject == "reader":
        ann = s.scalar(
            select(Annotation).where(
                Annotation.image_id == image_id,
                Annotation.owner_id == request.user_id,
                Annotation.kind == AnnotationKind.READER.value,
            )
        )
        if ann is None:
            return None
        rev_id = ann.approved_revision_id if request.which == "approved" else ann.head_revision_id
        return s.get(Revision, rev_id) if rev_id else None
    return s.scalar(
        select(Revision)
        .join(Annotation, Annotation.id == Revision.annotation_id)
        .where(Annotation.image_id == image_id, Revision.engine_name == request.engine_name)
        .order_by(Revision.created_at.desc(), Revision.id.desc())
        .limit(1)
    )


def _prepare(
    ctx: Context, actor: Principal | None, project_id: int, request: EvaluationRequest
) -> _Prepared:
    with ctx.db.read() as s:
        if actor is not None:
            require_project(s, actor, project_id, ProjectRole.REVIEWER)
        if request.subject == "reader":
            member = s.get(ProjectMember, (project_id, request.user_id))
            user = s.get(User, request.user_id)
            if member is None or user is None:
                raise InvalidInputError(f"user {request.user_id} is not a member of this project")
            subject: dict[str, Any] = {"kind": "reader", "user_id": user.id, "name": user.username}
        else:
            subject = {"kind": "engine", "engine_name": request.engine_name}
        labels = s.scalars(
            select(Label).where(Label.project_id == project_id, Label.kind == LabelKind.MASK.value)
        )
        names = {int(lab.value): lab.name for lab in labels if lab.value is not None}
        images = s.scalars(select(Image).where(Image.project_id == project_id).order_by(Image.id))
        cases = []
        for image in images:
            pred = _subject_revision(s, image.id, request)
            if pred is None:
                continue
            ref = reference_revisions(s, image.id)
            own = pred.annotation_id
            refs = [r for r in ref.revisions if r.annotation_id != own]
            if not refs:
                continue
            cases.append((image.name, image, pred, refs, ref.source.value))
        s.expunge_all()
    if not cases:
        raise InvalidInputError(
            "nothing to evaluate: no image has both a revision of "
            f"{_describe(subject)} and a reference (an approved consensus or approved "
            "readings by someone else)"
        )
    return _Prepared(subject, names, cases)


def check_evaluable(ctx: Context, project_id: int, request: EvaluationRequest) -> None:
    """Raise :class:`InvalidInputError` now if :func:`run_evaluation` would find nothing
    to evaluate (reads only the database, no pixels)."""
    _prepare(ctx, None, project_id, request)


def _describe(subject: dict[str, Any]) -> str:
    if subject["kind"] == "reader":
        return f"reader {subject['name']}"
    return f"engine {subject['engine_name']}"


def _cases(ctx: Context, prepared: _Prepared) -> Iterator[Case | SkippedCase]:
    seen: dict[str, int] = {}
    for name, image, pred, refs, source in prepared.cases:
        seen[name] = seen.get(name, 0) + 1
        case_name = name if seen[name] == 1 else f"{name} ({image.id})"
        shape = tuple(image.shape)
        pred_mask = load_mask(ctx, pred)
        ref_masks = [load_mask(ctx, r) for r in refs]
        filled = [m if m is not None else np.zeros(shape, np.uint8) for m in ref_masks]
        ref_mask = filled[0] if len(filled) == 1 else majority_vote(filled).labelmap
        yield Case(
            case_name,
            pred_mask if pred_mask is not None else np.zeros(shape, np.uint8),
            ref_mask,
            spacing=spacing_of(image),
            sources={
                "image_id": str(image.id),
                "pred_revision": str(pred.id),
                "reference": f"{source}: revisions {', '.join(str(r.id) for r in refs)}",
            },
        )


def run_evaluation(
    ctx: Context,
    actor: Principal | None,
    project_id: int,
    request: EvaluationRequest,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Evaluate a reader or an engine against the project's reference and store the report.

    Raises
    ------
    InvalidInputError
        The reader is not a member, or nothing can be evaluated.
    PermissionDeniedError
        The actor is not a reviewer of the project.
    """
    prepared = _prepare(ctx, actor, project_id, request)
    total = len(prepared.cases)
    options = ReportOptions(
        label_names=prepared.label_names,
        tolerance_mm=request.tolerance_mm,
        seed=request.seed,
        title=f"{_describe(prepared.subject).capitalize()} against the reference",
    )
    sources = Sources(
        pred=_describe(prepared.subject),
        ref="the image's approved consensus, else its approved readings (majority vote)",
    )
    report = build_report(
        _cases(ctx, prepared),
        options,
        sources,
        progress=(lambda done, _name: progress(done, total)) if progress else None,
    )
    document = report.to_json()
    summary = {
        str(row["label"]): {
            "name": prepared.label_names.get(int(row["label"]), f"label {row['label']}"),
            "cases": row["n_cases"],
            **{
                metric: {k: row["metrics"][metric].get(k) for k in ("mean", "ci_low", "ci_high")}
                for metric in ("dice", "hd95", "nsd")
                if metric in row["metrics"]
            },
        }
        for row in document["summary"]
    }
    with unit_of_work(ctx.db, ctx.blobs) as (s, blobs):
        row = Evaluation(
            project_id=project_id,
            created_by=actor.id if actor else None,
            subject=prepared.subject,
            options=request.model_dump(),
            cases=report.n_cases,
            skipped=len(report.skipped),
            summary=summary,
            report_digest=blobs.put(
                gzip.compress(json.dumps(document, allow_nan=False).encode(), mtime=0)
            ).digest,
            html_digest=blobs.put(report.to_html().encode()).digest,
        )
        s.add(row)
        s.flush()
        audit.record(  # the reader by id; never an engine name (typed by the user)
            s,
            actor,
            AuditAction.EVALUATION_CREATE,
            target_type="evaluation",
            target_id=row.id,
            project_id=project_id,
            details={
                "subject": prepared.subject["kind"],
                "user_id": prepared.subject.get("user_id"),
                "cases": row.cases,
                "skipped": row.skipped,
            },
        )
        s.expunge(row)
    return row


@dataclass(frozen=True)
class ReaderSubject:
    """A project member who may be evaluated as a reader."""

    user_id: int
    name: str
    full_name: str
    role: ProjectRole
    #: their readings (reader annotations) with a revision, and those approved
    readings: int
    approved: int


@dataclass(frozen=True)
class EngineSubject:
    """An engine that made revisions in the project."""

    engine_name: str
    revisions: int
    images: int


@dataclass(frozen=True)
class Subjects:
    readers: list[ReaderSubject]
    engines: list[EngineSubject]


def list_subjects(ctx: Context, actor: Principal, project_id: int) -> Subjects:
    """What can be evaluated in the project: its members (with how many readings they
    made and how many of those were approved) and the engines (models, classical tools,
    consensus methods) that made revisions, by name, with their revision and image counts.

    Raises
    ------
    PermissionDeniedError
        The actor is not a reviewer of the project.
    """
    with ctx.db.read() as s:
        require_project(s, actor, project_id, ProjectRole.REVIEWER)
        readings = (
            select(User.id, User.username, User.full_name, ProjectMember.role)
            .add_columns(func.count(Annotation.id), func.count(Annotation.approved_revision_id))
            .join(ProjectMember, ProjectMember.user_id == User.id)
            .outerjoin(
                Annotation,
                (Annotation.owner_id == User.id)
                & (Annotation.project_id == project_id)
                & (Annotation.kind == AnnotationKind.READER.value)
                & Annotation.head_revision_id.is_not(None),
            )
            .where(ProjectMember.project_id == project_id)
            .group_by(User.id, User.username, User.full_name, ProjectMember.role)
            .order_by(User.username)
        )
        readers = [
            ReaderSubject(uid, name, full or "", ProjectRole(role), n, approved)
            for uid, name, full, role, n, approved in s.execute(readings)
        ]
        engines = s.execute(
            select(
                Revision.engine_name,
                func.count(Revision.id),
                func.count(distinct(Annotation.image_id)),
            )
            .join(Annotation, Annotation.id == Revision.annotation_id)
            .where(Annotation.project_id == project_id, Revision.engine_name.is_not(None))
            .group_by(Revision.engine_name)
            .order_by(Revision.engine_name)
        )
        return Subjects(
            readers, [EngineSubject(str(name), n, images) for name, n, images in engines]
        )


def _evaluation(s: Session, actor: Principal, evaluation_id: int) -> Evaluation:
    row = s.get(Evaluation, evaluation_id)
    if row is None:
        raise NotFoundError(f"evaluation {evaluation_id} not found")
    require_project(s, actor, row.project_id, ProjectRole.REVIEWER)
    return row


def list_evaluations(ctx: Context, actor: Principal, project_id: int) -> list[Evaluation]:
    with ctx.db.read() as s:
        require_project(s, actor, project_id, ProjectRole.REVIEWER)
        return list(
            s.scalars(
                select(Evaluation)
                .where(Evaluation.project_id == project_id)
                .order_by(Evaluation.id.desc())
            )
        )


def get_evaluation(ctx: Context, actor: Principal, evaluation_id: int) -> Evaluation:
    with ctx.db.read() as s:
        return _evaluation(s, actor, evaluation_id)


def _open_report(ctx: Context, actor: Principal, evaluation_id: int, fmt: str) -> Evaluation:
    """The evaluation, once its ``evaluation.read`` event is committed: a report leaves
    the system like an export's download, so every fetch is recorded, before it is
    served."""
    with ctx.db.write() as s:
        row = _evaluation(s, actor, evaluation_id)
        audit.record(
            s,
            actor,
            AuditAction.EVALUATION_READ,
            target_type="evaluation",
            target_id=row.id,
            project_id=row.project_id,
            details={"format": fmt},
        )
    return row


def report_html(ctx: Context, actor: Principal, evaluation_id: int) -> bytes:
    """The stored self-contained HTML report."""
    return ctx.blobs.read_bytes(_open_report(ctx, actor, evaluation_id, "html").html_digest)


def report_json(ctx: Context, actor: Principal, evaluation_id: int) -> dict[str, Any]:
    """The stored report as JSON (per-case rows, summary with confidence intervals)."""
    digest = _open_report(ctx, actor, evaluation_id, "json").report_digest
    data: dict[str, Any] = json.loads(gzip.decompress(ctx.blobs.read_bytes(digest)))
    return data
