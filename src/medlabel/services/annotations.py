"""Annotations and their revision history: save, restore, submit, approve."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from medlabel.annotation.content import (
    AnnotationContent,
    check_mask,
    check_mask_values,
    normalize_content,
)
from medlabel.annotation.enums import (
    AnnotationKind,
    AnnotationState,
    ImageStatus,
    LabelKind,
    RevisionSource,
)
from medlabel.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from medlabel.core.ids import utcnow
from medlabel.io.arrays import decode_array, encode_array
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, project_role, require_project
from medlabel.services.assignments import claim_reading
from medlabel.services.blobrefs import BlobTransaction, unit_of_work
from medlabel.services.context import Context
from medlabel.services.drafts import drop_draft
from medlabel.storage.db.models import Annotation, Image, Label, Project, Revision, User

log = logging.getLogger(__name__)


class Keep(Enum):
    """Sentinel: keep the parent revision's mask."""

    MASK = "keep"


KEEP_MASK = Keep.MASK


@dataclass(frozen=True)
class EngineInfo:
    """Provenance of a machine-made revision."""

    name: str
    version: str
    prompt: dict[str, Any] | None = None


@dataclass
class AnnotationView:
    annotation: Annotation
    head: Revision | None
    owner: str | None


def _labels(s: Session, project_id: int) -> list[Label]:
    return list(s.scalars(select(Label).where(Label.project_id == project_id)))


def _mask_values(labels: list[Label]) -> dict[int, str]:
    return {lab.value: lab.name for lab in labels if lab.value is not None}


def _mask_summary(mask: np.ndarray) -> dict[str, Any]:
    counts = np.bincount(mask.reshape(-1).astype(np.int64, copy=False))
    voxels = {str(v): int(n) for v, n in enumerate(counts) if v and n}
    return {"voxels": voxels, "dtype": str(mask.dtype)}


def _image(s: Session, actor: Principal, image_id: int, need: ProjectRole) -> Image:
    image = s.get(Image, image_id)
    if image is None:
        raise NotFoundError(f"image {image_id} not found")
    require_project(s, actor, image.project_id, need)
    return image


def _annotation(s: Session, actor: Principal, annotation_id: int, need: ProjectRole) -> Annotation:
    """An annotation the actor may see, with at least project role ``need``.

    In a blinded project only reviewers (and admins) see other people's annotations; to
    everyone else they do not exist (404), nor do their revisions, masks or comments.

    Annotator access is for changing it: the row is then locked until the transaction
    ends (``SELECT ... FOR UPDATE``; SQLite's write transaction holds the database lock
    already), so a concurrent save waits and then sees the new version — a conflict —
    instead of both writing revision ``n + 1``."""
    lock = need.at_least(ProjectRole.ANNOTATOR)
    ann = s.get(Annotation, annotation_id, with_for_update=lock, populate_existing=lock)
    if ann is None:
        raise NotFoundError(f"annotation {annotation_id} not found")
    project = require_project(s, actor, ann.project_id, need)
    if not sees_all_readings(s, actor, project) and ann.owner_id != actor.id:
        raise NotFoundError(f"annotation {annotation_id} not found")
    return ann


def sees_all_readings(s: Session, actor: Principal, project: Project) -> bool:
    """False when the project is blinded and the actor is below the reviewer role: they
    see only their own annotations."""
    if not project.blinded:
        return True
    role = project_role(s, actor, project.id)
    return role is not None and role.at_least(ProjectRole.REVIEWER)


def refresh_image_status(s: Session, image_id: int) -> None:
    """Derive an image's work status from its annotations.

    The image is approved when its consensus is approved or, without a consensus, when
    as many readings as the project wants per image are approved; submitted when that
    many readings are submitted or approved; in progress while anyone works on it.
    """
    image = s.get(Image, image_id)
    if image is None:
        return
    project = s.get(Project, image.project_id)
    wanted = project.readers_per_image if project is not None else 1
    rows = s.execute(
        select(Annotation.kind, Annotation.state).where(Annotation.image_id == image_id)
    ).all()
    approved = AnnotationState.APPROVED.value
    done = (AnnotationState.SUBMITTED.value, approved)
    readers = [state for kind, state in rows if kind == AnnotationKind.READER.value]
    consensus = [state for kind, state in rows if kind == AnnotationKind.CONSENSUS.value]
    if approved in consensus or sum(st == approved for st in readers) >= wanted:
        status = ImageStatus.APPROVED
    elif sum(st in done for st in readers) >= wanted or any(st in done for st in consensus):
        status = ImageStatus.SUBMITTED
    elif rows:
        status = ImageStatus.IN_PROGRESS
    else:
        status = ImageStatus.UNLABELLED
    if image.status != status.value:
        image.status = status.value


def _may_edit(s: Session, actor: Principal, ann: Annotation) -> None:
    if ann.owner_id == actor.id:
        require_project(s, actor, ann.project_id, ProjectRole.ANNOTATOR)
        return
    require_project(s, actor, ann.project_id, ProjectRole.REVIEWER)


def list_annotations(ctx: Context, actor: Principal, image_id: int) -> list[AnnotationView]:
    """The annotations of an image (in a blinded project, readers below the reviewer role
    get only their own)."""
    with ctx.db.read() as s:
        image = _image(s, actor, image_id, ProjectRole.VIEWER)
        stmt = select(Annotation).where(Annotation.image_id == image_id)
        project = s.get(Project, image.project_id)
        assert project is not None
        if not sees_all_readings(s, actor, project):
            stmt = stmt.where(Annotation.owner_id == actor.id)
        return [_view(s, a) for a in s.scalars(stmt.order_by(Annotation.id))]


def _view(s: Session, ann: Annotation) -> AnnotationView:
    head = s.get(Revision, ann.head_revision_id) if ann.head_revision_id else None
    owner = s.get(User, ann.owner_id) if ann.owner_id else None
    return AnnotationView(ann, head, owner.username if owner else None)


def get_annotation(ctx: Context, actor: Principal, annotation_id: int) -> AnnotationView:
    with ctx.db.read() as s:
        return _view(s, _annotation(s, actor, annotation_id, ProjectRole.VIEWER))


def save_annotation(
    ctx: Context,
    actor: Principal,
    image_id: int,
    *,
    content: AnnotationContent,
    mask: np.ndarray | Keep | None = KEEP_MASK,
    annotation_id: int | None = None,
    base_version: int | None = None,
    message: str = "",
    engine: EngineInfo | None = None,
    source: RevisionSource | None = None,
    kind: AnnotationKind = AnnotationKind.READER,
) -> AnnotationView:
    """Save a new revision of the actor's annotation of an image.

    Without ``annotation_id`` the actor's annotation of the image is created (a second
    create is a conflict); with ``kind`` consensus, the image's consensus annotation
    (no owner, one per image, reviewers only) is created instead. With it,
    ``base_version`` must equal the annotation's current version, so an edit made on
    stale data is refused with :class:`ConflictError` instead of overwriting someone
    else's save.

    ``mask`` is a ``(planes, rows, columns)`` label array, None to remove the mask, or
    :data:`KEEP_MASK` to keep the parent revision's.
    """
    if source is None:
        source = RevisionSource.ENGINE if engine else RevisionSource.HUMAN
    tx = BlobTransaction(ctx.blobs)
    prepared = (
        _prepare_mask(ctx, actor, image_id, mask, tx) if isinstance(mask, np.ndarray) else None
    )
    with unit_of_work(ctx.db, ctx.blobs, tx) as (s, _):
        image = _image(s, actor, image_id, ProjectRole.ANNOTATOR)
        labels = _labels(s, image.project_id)
        kinds = {lab.name: LabelKind(lab.kind) for lab in labels}
        content = normalize_content(
            content, labels=kinds, shape=image.shape, affine=np.asarray(image.affine)
        )
        if annotation_id is None:
            ann = _create_annotation(s, actor, image, AnnotationKind(kind))
            parent = None
        else:
            ann = _annotation(s, actor, annotation_id, ProjectRole.ANNOTATOR)
            if ann.image_id != image_id:
                raise InvalidInputError(f"annotation {annotation_id} is not on image {image_id}")
            _may_edit(s, actor, ann)
            _check_version(s, ann, base_version)
            parent = s.get(Revision, ann.head_revision_id) if ann.head_revision_id else None
        if isinstance(mask, Keep):
            mask_digest = parent.mask_digest if parent else None
            summary = parent.mask_summary if parent else {}
        elif prepared is None:  # mask None: the revision has no mask
            mask_digest, summary = None, {}
        else:
            # the schema may have changed since the mask was checked: cheap re-check
            check_mask_values(prepared.values, _mask_values(labels))
            mask_digest, summary = prepared.digest, prepared.summary
        drop_draft(s, image_id, actor.id)  # the draft has become a revision
        rev = _new_revision(
            s,
            ann,
            parent,
            actor,
            source,
            engine,
            content.model_dump(),
            mask_digest,
            summary,
            message,
        )
        view = _commit_head(s, ann, rev)
        audit.record(
            s,
            actor,
            AuditAction.ANNOTATION_SAVE,
            target_type="annotation",
            target_id=ann.id,
            project_id=ann.project_id,
            details={"image_id": image_id, "revision_id": rev.id, "source": source.value},
        )
    log.info("saved revision id=%s of annotation id=%s", rev.id, ann.id)
    return view


@dataclass(frozen=True)
class _PreparedMask:
    digest: str
    summary: dict[str, Any]
    values: tuple[int, ...]


def _prepare_mask(
    ctx: Context, actor: Principal, image_id: int, mask: np.ndarray, tx: BlobTransaction
) -> _PreparedMask:
    """Check, encode and store a mask before the write transaction begins: the slow part
    of a save (hundreds of ms for a large volume) must not hold the database's write
    lock, or concurrent writers queue behind it (SQLite) and time out."""
    try:
        with ctx.db.read() as s:
            image = _image(s, actor, image_id, ProjectRole.ANNOTATOR)
            shape, values = tuple(image.shape), _mask_values(_labels(s, image.project_id))
        check_mask(mask, shape=shape, values=values)
        mask = mask.astype(np.uint8 if mask.max(initial=0) < 256 else np.uint16, copy=False)
        summary = _mask_summary(mask)
        digest = tx.put(encode_array(mask, compress=True)).digest
    except BaseException:
        if tx.created:
            with ctx.db.read() as s:
                tx.rollback(s)
        raise
    present = tuple(int(v) for v in summary["voxels"])
    return _PreparedMask(digest, summary, present)


def _create_annotation(
    s: Session, actor: Principal, image: Image, kind: AnnotationKind
) -> Annotation:
    # one creator per image at a time (the row lock waits for the others' commits), so
    # the check below sees their annotations: the consensus one has no unique owner
    s.execute(select(Image.id).where(Image.id == image.id).with_for_update())
    if kind == AnnotationKind.CONSENSUS:
        require_project(s, actor, image.project_id, ProjectRole.REVIEWER)
        mine = Annotation.kind == kind.value
        owner = None
    else:
        mine = (Annotation.owner_id == actor.id) & (Annotation.kind == kind.value)
        owner = actor.id
    existing = s.scalar(select(Annotation.id).where(Annotation.image_id == image.id, mine))
    if existing is not None:
        whose = "this image's consensus is" if owner is None else "you already have"
        raise ConflictError(
            f"{whose} annotation {existing}; save to it with its version instead of "
            "creating another",
            details={"annotation_id": existing},
        )
    if owner is not None:
        claim_reading(s, actor, image)
    ann = Annotation(
        project_id=image.project_id, image_id=image.id, owner_id=owner, kind=kind.value
    )
    s.add(ann)
    s.flush()
    return ann


def _check_version(s: Session, ann: Annotation, base_version: int | None) -> None:
    if base_version is None:
        raise InvalidInputError("base_version is required when saving an existing annotation")
    if ann.version != base_version:
        head = s.get(Revision, ann.head_revision_id) if ann.head_revision_id else None
        author = s.get(User, head.author_id) if head and head.author_id else None
        raise ConflictError(
            f"annotation {ann.id} was saved by {author.username if author else 'someone'} "
            f"since you loaded it (your version {base_version}, now {ann.version}); reload "
            "it, merge your changes and save again",
            details={
                "annotation_id": ann.id,
                "current_version": ann.version,
                "head_revision_id": ann.head_revision_id,
                "saved_by": author.username if author else None,
                "saved_at": head.created_at.isoformat() if head else None,
            },
        )


def _new_revision(
    s: Session,
    ann: Annotation,
    parent: Revision | None,
    actor: Principal,
    source: RevisionSource,
    engine: EngineInfo | None,
    content: dict[str, Any],
    mask_digest: str | None,
    mask_summary: dict[str, Any],
    message: str,
    restored_from: int | None = None,
) -> Revision:
    number = (
        s.scalar(select(func.max(Revision.number)).where(Revision.annotation_id == ann.id)) or 0
    ) + 1
    rev = Revision(
        annotation_id=ann.id,
        number=number,
        parent_id=parent.id if parent else None,
        author_id=actor.id,
        source=source.value,
        engine_name=engine.name if engine else None,
        engine_version=engine.version if engine else None,
        prompt=engine.prompt if engine else None,
        content=content,
        mask_digest=mask_digest,
        mask_summary=mask_summary,
        message=message[:2000],
        restored_from_id=restored_from,
    )
    s.add(rev)
    s.flush()
    return rev


def _commit_head(s: Session, ann: Annotation, rev: Revision) -> AnnotationView:
    ann.head_revision_id = rev.id
    ann.state = AnnotationState.DRAFT.value
    ann.updated_at = utcnow()
    try:
        s.flush()
    except StaleDataError:
        raise ConflictError(
            f"annotation {ann.id} was saved by someone else at the same moment; reload it"
        ) from None
    refresh_image_status(s, ann.image_id)
    return _view(s, ann)


def list_revisions(ctx: Context, actor: Principal, annotation_id: int) -> list[Revision]:
    """All revisions of an annotation, newest first."""
    with ctx.db.read() as s:
        _annotation(s, actor, annotation_id, ProjectRole.VIEWER)
        return list(
            s.scalars(
                select(Revision)
                .where(Revision.annotation_id == annotation_id)
                .order_by(Revision.number.desc())
            )
        )


def get_revision(ctx: Context, actor: Principal, revision_id: int) -> Revision:
    with ctx.db.read() as s:
        rev = s.get(Revision, revision_id)
        if rev is None:
            raise NotFoundError(f"revision {revision_id} not found")
        _annotation(s, actor, rev.annotation_id, ProjectRole.VIEWER)
        return rev


def load_mask(ctx: Context, revision: Revision) -> np.ndarray | None:
    """The revision's label mask, or None if it has none."""
    if revision.mask_digest is None:
        return None
    return decode_array(ctx.blobs.read_bytes(revision.mask_digest))


def restore_revision(
    ctx: Context, actor: Principal, annotation_id: int, revision_id: int, base_version: int | None
) -> AnnotationView:
    """Make an old revision current again, as a new revision (history is never rewritten)."""
    with ctx.db.write() as s:
        ann = _annotation(s, actor, annotation_id, ProjectRole.ANNOTATOR)
        _may_edit(s, actor, ann)
        _check_version(s, ann, base_version)
        old = s.get(Revision, revision_id)
        if old is None or old.annotation_id != ann.id:
            raise NotFoundError(f"revision {revision_id} is not a revision of annotation {ann.id}")
        parent = s.get(Revision, ann.head_revision_id) if ann.head_revision_id else None
        rev = _new_revision(
            s,
            ann,
            parent,
            actor,
            RevisionSource.HUMAN,
            None,
            dict(old.content),
            old.mask_digest,
            dict(old.mask_summary),
            f"restored revision {old.number}",
            restored_from=old.id,
        )
        audit.record(
            s,
            actor,
            AuditAction.ANNOTATION_RESTORE,
            target_type="annotation",
            target_id=ann.id,
            project_id=ann.project_id,
            details={"revision_id": rev.id, "restored_from": old.id},
        )
        return _commit_head(s, ann, rev)


class Transition(StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    REOPEN = "reopen"


_ALLOWED = {
    Transition.SUBMIT: (
        {AnnotationState.DRAFT, AnnotationState.REJECTED},
        AnnotationState.SUBMITTED,
    ),
    Transition.APPROVE: ({AnnotationState.SUBMITTED}, AnnotationState.APPROVED),
    Transition.REJECT: ({AnnotationState.SUBMITTED}, AnnotationState.REJECTED),
    Transition.REOPEN: (
        {AnnotationState.SUBMITTED, AnnotationState.APPROVED, AnnotationState.REJECTED},
        AnnotationState.DRAFT,
    ),
}


def transition(
    ctx: Context,
    actor: Principal,
    annotation_id: int,
    action: Transition | str,
    base_version: int | None,
) -> AnnotationView:
    """Move an annotation through draft → submitted → approved / rejected.

    Authors submit their own work (reviewers may submit for them); reviewers approve or
    reject submissions; authors and reviewers may reopen an annotation as a draft.
    Approval records the approved revision: the reference labels of this reader.
    A rejection needs a comment, so it goes through
    :func:`medlabel.services.review.review`; here it is refused."""
    action = _action(action)
    with ctx.db.write() as s:
        ann = _annotation(s, actor, annotation_id, ProjectRole.ANNOTATOR)
        apply_transition(s, actor, ann, action, base_version, comments=0)
        return _view(s, ann)


def _action(action: Transition | str) -> Transition:
    try:
        return Transition(action)
    except ValueError:
        raise InvalidInputError(
            f"unknown action {action!r}; use one of {[t.value for t in Transition]}"
        ) from None


def apply_transition(
    s: Session,
    actor: Principal,
    ann: Annotation,
    action: Transition | str,
    base_version: int | None,
    *,
    comments: int,
) -> None:
    """The state machine of :func:`transition`, inside the caller's transaction.

    ``comments`` is how many review comments come with the action: a rejection needs at
    least one. Reviewers may not approve or reject their own readings; admins may.

    Raises
    ------
    ConflictError
        Stale ``base_version``, or the action is not allowed in the current state.
    PermissionDeniedError
        The actor's role does not allow the action.
    InvalidInputError
        Unknown action, nothing saved to submit, or a rejection without a comment.
    """
    action = _action(action)
    _check_version(s, ann, base_version)
    sources, target = _ALLOWED[action]
    if AnnotationState(ann.state) not in sources:
        raise ConflictError(f"cannot {action.value} an annotation that is {ann.state}")
    if action == Transition.SUBMIT:
        if ann.owner_id != actor.id:
            require_project(s, actor, ann.project_id, ProjectRole.REVIEWER)
        if ann.head_revision_id is None:
            raise InvalidInputError("save the annotation before submitting it")
        ann.submitted_at = utcnow()
    elif action in (Transition.APPROVE, Transition.REJECT):
        require_project(s, actor, ann.project_id, ProjectRole.REVIEWER)
        if ann.owner_id == actor.id and not actor.is_admin:
            raise PermissionDeniedError(
                "you cannot review your own annotation; another reviewer has to"
            )
        if action == Transition.REJECT and comments < 1:
            raise InvalidInputError(
                "a rejection needs at least one comment telling the reader what to fix; "
                "use POST /api/annotations/{id}/review with comments"
            )
    elif ann.owner_id != actor.id:
        require_project(s, actor, ann.project_id, ProjectRole.REVIEWER)
    ann.state = target.value
    if action == Transition.APPROVE:
        ann.approved_revision_id = ann.head_revision_id
    ann.updated_at = utcnow()
    try:
        s.flush()
    except StaleDataError:
        raise ConflictError(f"annotation {ann.id} changed meanwhile; reload it") from None
    refresh_image_status(s, ann.image_id)
    audit.record(
        s,
        actor,
        AuditAction(f"annotation.{action.value}"),
        target_type="annotation",
        target_id=ann.id,
        project_id=ann.project_id,
        details={"revision_id": ann.head_revision_id, "comments": comments},
    )


__all__ = [
    "KEEP_MASK",
    "AnnotationView",
    "EngineInfo",
    "Transition",
    "apply_transition",
    "get_annotation",
    "get_revision",
    "list_annotations",
    "list_revisions",
    "load_mask",
    "restore_revision",
    "save_annotation",
    "sees_all_readings",
    "transition",
]
