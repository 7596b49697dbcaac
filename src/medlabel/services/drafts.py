"""Autosaved drafts: one per user and image, checked like a save but not a revision."""

from __future__ import annotations

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from medlabel.annotation.content import AnnotationContent, check_mask, normalize_content
from medlabel.annotation.enums import LabelKind
from medlabel.core.errors import NotFoundError
from medlabel.core.ids import utcnow
from medlabel.io.arrays import encode_array
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, require_project
from medlabel.services.blobrefs import unit_of_work
from medlabel.services.context import Context
from medlabel.storage.db.models import Draft, Image, Label


def _image(s: Session, actor: Principal, image_id: int, need: ProjectRole) -> Image:
    image = s.get(Image, image_id)
    if image is None:
        raise NotFoundError(f"image {image_id} not found")
    require_project(s, actor, image.project_id, need)
    return image


def save_draft(
    ctx: Context,
    actor: Principal,
    image_id: int,
    *,
    content: AnnotationContent,
    mask: np.ndarray | None,
    annotation_id: int | None,
    base_version: int | None,
) -> Draft:
    """Replace the actor's draft of an image (validated as a save would be)."""
    with unit_of_work(ctx.db, ctx.blobs) as (s, blobs):
        image = _image(s, actor, image_id, ProjectRole.ANNOTATOR)
        labels = list(s.scalars(select(Label).where(Label.project_id == image.project_id)))
        kinds = {lab.name: LabelKind(lab.kind) for lab in labels}
        content = normalize_content(
            content, labels=kinds, shape=image.shape, affine=np.asarray(image.affine)
        )
        digest = None
        if mask is not None:
            values = {lab.value: lab.name for lab in labels if lab.value is not None}
            check_mask(mask, shape=image.shape, values=values)
            digest = blobs.put(encode_array(mask, compress=True)).digest
        draft = s.scalar(select(Draft).where(Draft.image_id == image_id, Draft.user_id == actor.id))
        if draft is None:
            draft = Draft(image_id=image_id, user_id=actor.id)
            s.add(draft)
        draft.content = content.model_dump()
        draft.mask_digest = digest
        draft.annotation_id = annotation_id
        draft.base_version = base_version
        draft.updated_at = utcnow()
        s.flush()
        return draft


def get_draft(ctx: Context, actor: Principal, image_id: int) -> Draft | None:
    with ctx.db.read() as s:
        _image(s, actor, image_id, ProjectRole.VIEWER)
        return s.scalar(select(Draft).where(Draft.image_id == image_id, Draft.user_id == actor.id))


def discard_draft(ctx: Context, actor: Principal, image_id: int) -> None:
    with ctx.db.write() as s:
        _image(s, actor, image_id, ProjectRole.VIEWER)
        drop_draft(s, image_id, actor.id)


def drop_draft(s: Session, image_id: int, user_id: int) -> None:
    """Remove a user's draft of an image (inside the caller's transaction)."""
    s.execute(delete(Draft).where(Draft.image_id == image_id, Draft.user_id == user_id))
