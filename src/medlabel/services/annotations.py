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

from medlabel.annotation.content import AnnotationContent, check_mask, normalize_content
from medlabel.annotation.enums import AnnotationState, ImageStatus, LabelKind, RevisionSource
from medlabel.core.errors import ConflictError, InvalidInputError, NotFoundError
from medlabel.core.ids import utcnow
from medlabel.io.arrays import decode_array, encode_array
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, require_project
from medlabel.services.blobrefs import unit_of_work
from medlabel.services.context import Context
from medlabel.services.drafts import drop_draft
from medlabel.storage.db.models import Annotation, Image, Label, Revision, User

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
    ann = s.get(Annotation, annotation_id)
    if ann is None:
        raise NotFoundError(f"annotation {annotation_id} not found")
    require_project(s, actor, ann.project_id, need)
    return ann


def refresh_image_status(s: Session, image_id: int) -> None:
    """Derive an image's work status from its annotations."""
    states = set(s.scalars(select(Annotation.state).where(Annotation.image_id == image_id)))
    if AnnotationState.APPROVED.value in states:
        status = ImageStatus.APPROVED
    elif AnnotationState.SUBMITTED.value in states:
        status = ImageStatus.SUBMITTED
    elif states:
        status = ImageStatus.IN_PROGRESS
    else:
        status = ImageStatus.UNLABELLED
    image = s.get(Image, image_id)
    if image is not None and image.status != status.value:
        image.status = status.value


def _may_edit(s: Session, actor: Principal, ann: Annotation) -> None:
    if ann.owner_id == actor.id:
        require_project(s, actor, ann.project_id, ProjectRole.ANNOTATOR)
        return
    require_project(s, actor, ann.project_id, ProjectRole.REVIEWER)


def list_annotations(ctx: Context, actor: Principal, image_id: int) -> list[AnnotationView]:
    with ctx.db.read() as s:
        _image(s, actor, image_id, ProjectRole.VIEWER)
        anns = list(
            s.scalars(
                select(Annotation).where(Annotation.image_id == image_id).order_by(Annotation.id)
            )
        )
        return [_view(s, a) for a in anns]


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
) -> AnnotationView:
    """Save a new revision of the actor's annotation of an image.

    Without ``annotation_id`` the actor's annotation of the image is created (a second
    create is a conflict). With it, ``base_version`` must equal the annotation's current
    version, so an edit made on stale data is refused with :class:`ConflictError`
    instead of overwriting someone else's save.

    ``mask`` is a ``(planes, rows, columns)`` label array, None to remove the mask, or
    :data:`KEEP_MASK` to keep the parent revision's.
    """
    if source is None:
        source = RevisionSource.ENGINE if engine else RevisionSource.HUMAN
    with unit_of_work(ctx.db, ctx.blobs) as (s, blobs):
        image = _image(s, actor, image_id, ProjectRole.ANNOTATOR)
        labels = _labels(s, image.project_id)
        kinds = {lab.name: LabelKind(lab.kind) for lab in labels}
        content = normalize_content(
            content, labels=kinds, shape=image.shape, affine=np.asarray(image.affine)
        )
        if annotation_id is None:
            existing = s.scalar(
                select(Annotation.id).where(
                    Annotation.image_id == image_id, Annotation.owner_id == actor.id
                )
            )
            if existing is not None:
                raise ConflictError(
                    f"you already have annotation {existing} on this image; save to it with "
                    "its version instead of creating another",
                    details={"annotation_id": existing},
                )
            ann = Annotation(project_id=image.project_id, image_id=image_id, owner_id=actor.id)
            s.add(ann)
            s.flush()
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
        elif mask is None:
            mask_digest, summary = None, {}
        else:
            check_mask(mask, shape=image.shape, values=_mask_values(labels))
            mask = mask.astype(np.uint8 if mask.max(initial=0) < 256 else np.uint16, copy=False)
            mask_digest = blobs.put(encode_array(mask, compress=True)).digest
            summary = _mask_summary(mask)
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
    log.info("saved revision id=%s of annotation id=%s", rev.id, ann.id)
    return view


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
    Approval records the approved revision: the reference labels of this reader."""
    try:
        action = Transition(action)
    except ValueError:
        raise InvalidInputError(
            f"unknown action {action!r}; use one of {[t.value for t in Transition]}"
        ) from None
    with ctx.db.write() as s:
        ann = _annotation(s, actor, annotation_id, ProjectRole.ANNOTATOR)
        _check_version(s, ann, base_version)
        sources, target = _ALLOWED[action]
        if AnnotationState(ann.state) not in sources:
            raise ConflictError(f"cannot {action.value} an annotation that is {ann.state}")
        if action == Transition.SUBMIT:
            if ann.owner_id != actor.id:
                require_project(s, actor, ann.project_id, ProjectRole.REVIEWER)
            if ann.head_revision_id is None:
                raise InvalidInputError("save the annotation before submitting it")
        elif action in (Transition.APPROVE, Transition.REJECT) or ann.owner_id != actor.id:
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
        return _view(s, ann)


__all__ = [
    "KEEP_MASK",
    "AnnotationView",
    "EngineInfo",
    "Transition",
    "get_annotation",
    "get_revision",
    "list_annotations",
    "list_revisions",
    "load_mask",
    "restore_revision",
    "save_annotation",
    "transition",
]
