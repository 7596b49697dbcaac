"""Annotations of images, their revision history and review state."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import AnnotationKind, AnnotationState, RevisionSource
from medlabel.imaging.volume import Volume
from medlabel.io.arrays import decode_array
from medlabel.io.nifti import write_nifti
from medlabel.security.audit import ImageReadKind
from medlabel.server.api.masks import MaskIn, decode_mask_in
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import annotations as svc
from medlabel.services import drafts as drafts_svc
from medlabel.services import images as images_svc
from medlabel.services.access import Principal
from medlabel.services.context import Context
from medlabel.services.masks import MaskEncoding, encode_raw_gzip
from medlabel.storage.db.models import Revision

router = APIRouter(tags=["annotations"])


class SaveIn(BaseModel):
    content: AnnotationContent = Field(default_factory=AnnotationContent)
    mask: MaskIn | None = Field(
        default=None, description="Omit to keep the current mask; null to remove it."
    )
    message: str = Field(default="", max_length=2000)


class UpdateIn(SaveIn):
    base_version: int = Field(description="The version you loaded; a mismatch gives 409.")


class VersionIn(BaseModel):
    base_version: int


class RestoreIn(VersionIn):
    revision_id: int


class RevisionOut(BaseModel):
    id: int
    annotation_id: int
    number: int
    parent_id: int | None
    author_id: int | None
    source: RevisionSource
    engine_name: str | None
    engine_version: str | None
    prompt: dict[str, Any] | None
    created_at: dt.datetime
    content: AnnotationContent
    has_mask: bool
    mask_summary: dict[str, Any]
    message: str
    restored_from_id: int | None


class AnnotationOut(BaseModel):
    id: int
    image_id: int
    project_id: int
    owner_id: int | None
    owner: str | None
    kind: AnnotationKind = Field(description="reader, or consensus (no owner).")
    state: AnnotationState
    version: int
    head_revision_id: int | None
    approved_revision_id: int | None
    updated_at: dt.datetime
    submitted_at: dt.datetime | None = Field(description="When it was last submitted.")
    head: RevisionOut | None


def revision_out(rev: Revision) -> RevisionOut:
    return RevisionOut(
        id=rev.id,
        annotation_id=rev.annotation_id,
        number=rev.number,
        parent_id=rev.parent_id,
        author_id=rev.author_id,
        source=RevisionSource(rev.source),
        engine_name=rev.engine_name,
        engine_version=rev.engine_version,
        prompt=rev.prompt,
        created_at=rev.created_at,
        content=AnnotationContent.model_validate(rev.content),
        has_mask=rev.mask_digest is not None,
        mask_summary=rev.mask_summary or {},
        message=rev.message,
        restored_from_id=rev.restored_from_id,
    )


def annotation_out(view: svc.AnnotationView) -> AnnotationOut:
    a = view.annotation
    return AnnotationOut(
        id=a.id,
        image_id=a.image_id,
        project_id=a.project_id,
        owner_id=a.owner_id,
        owner=view.owner,
        kind=AnnotationKind(a.kind),
        state=AnnotationState(a.state),
        version=a.version,
        head_revision_id=a.head_revision_id,
        approved_revision_id=a.approved_revision_id,
        updated_at=a.updated_at,
        submitted_at=a.submitted_at,
        head=revision_out(view.head) if view.head else None,
    )


def _decode(
    ctx: Context, me: Principal, image_id: int, body: SaveIn
) -> np.ndarray | svc.Keep | None:
    """The request's mask: omitted keeps the current one, null removes it."""
    if "mask" not in body.model_fields_set:
        return svc.KEEP_MASK
    if body.mask is None:
        return None
    return decode_mask_in(body.mask, images_svc.get_image(ctx, me, image_id))


def _mask_response(
    ctx: Context, me: Principal, image_id: int, mask: np.ndarray, encoding: MaskEncoding, name: str
) -> Response:
    """A mask as ``raw-gzip`` (shape and dtype in headers) or as a ``.nii.gz`` on the
    image's grid (which viewers such as NiiVue load as a drawing)."""
    images_svc.note_read(ctx, me, image_id, ImageReadKind.MASK)
    if encoding == MaskEncoding.RAW_GZIP:
        headers = {
            "X-Mask-Shape": ",".join(str(n) for n in mask.shape),
            "X-Mask-Dtype": str(mask.dtype),
        }
        return Response(encode_raw_gzip(mask), media_type="application/gzip", headers=headers)
    image = images_svc.get_image(ctx, me, image_id)
    data = write_nifti(Volume(mask, np.asarray(image.affine)))
    return Response(
        data,
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{name}.nii.gz"'},
    )


@router.get("/images/{image_id}/annotations", response_model=list[AnnotationOut])
def list_annotations(image_id: int, ctx: CtxDep, me: PrincipalDep) -> list[AnnotationOut]:
    return [annotation_out(v) for v in svc.list_annotations(ctx, me, image_id)]


@router.post(
    "/images/{image_id}/annotations",
    response_model=AnnotationOut,
    status_code=status.HTTP_201_CREATED,
)
def create_annotation(image_id: int, body: SaveIn, ctx: CtxDep, me: PrincipalDep) -> AnnotationOut:
    """Create your annotation of this image with its first revision."""
    mask = _decode(ctx, me, image_id, body)
    view = svc.save_annotation(
        ctx, me, image_id, content=body.content, mask=mask, message=body.message
    )
    return annotation_out(view)


@router.get("/annotations/{annotation_id}", response_model=AnnotationOut)
def get_annotation(annotation_id: int, ctx: CtxDep, me: PrincipalDep) -> AnnotationOut:
    return annotation_out(svc.get_annotation(ctx, me, annotation_id))


@router.put(
    "/annotations/{annotation_id}",
    response_model=AnnotationOut,
    responses={409: {"description": "Someone saved since base_version."}},
)
def save_annotation(
    annotation_id: int, body: UpdateIn, ctx: CtxDep, me: PrincipalDep
) -> AnnotationOut:
    """Save a new revision. ``base_version`` must be the version you loaded."""
    current = svc.get_annotation(ctx, me, annotation_id).annotation
    mask = _decode(ctx, me, current.image_id, body)
    view = svc.save_annotation(
        ctx,
        me,
        current.image_id,
        annotation_id=annotation_id,
        base_version=body.base_version,
        content=body.content,
        mask=mask,
        message=body.message,
    )
    return annotation_out(view)


@router.get("/annotations/{annotation_id}/revisions", response_model=list[RevisionOut])
def list_revisions(annotation_id: int, ctx: CtxDep, me: PrincipalDep) -> list[RevisionOut]:
    """The history, newest first."""
    return [revision_out(r) for r in svc.list_revisions(ctx, me, annotation_id)]


@router.post("/annotations/{annotation_id}/restore", response_model=AnnotationOut)
def restore(annotation_id: int, body: RestoreIn, ctx: CtxDep, me: PrincipalDep) -> AnnotationOut:
    """Make an earlier revision current again (as a new revision)."""
    view = svc.restore_revision(ctx, me, annotation_id, body.revision_id, body.base_version)
    return annotation_out(view)


@router.post("/annotations/{annotation_id}/{action}", response_model=AnnotationOut)
def transition(
    annotation_id: int, action: svc.Transition, body: VersionIn, ctx: CtxDep, me: PrincipalDep
) -> AnnotationOut:
    """``submit`` for review, ``approve`` (reviewers), ``reopen`` as draft. A rejection
    needs comments: use ``POST /annotations/{id}/review``."""
    return annotation_out(svc.transition(ctx, me, annotation_id, action, body.base_version))


@router.get("/revisions/{revision_id}", response_model=RevisionOut)
def get_revision(revision_id: int, ctx: CtxDep, me: PrincipalDep) -> RevisionOut:
    return revision_out(svc.get_revision(ctx, me, revision_id))


@router.get("/revisions/{revision_id}/mask", response_class=Response)
def get_mask(
    revision_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    encoding: MaskEncoding = Query(default=MaskEncoding.RAW_GZIP),
) -> Response:
    """The revision's label mask: ``raw-gzip`` (shape and dtype in headers) or ``nifti``
    (``.nii.gz`` on the image's grid)."""
    rev = svc.get_revision(ctx, me, revision_id)
    mask = svc.load_mask(ctx, rev)
    if mask is None:
        return Response(status_code=204)
    image_id = svc.get_annotation(ctx, me, rev.annotation_id).annotation.image_id
    return _mask_response(ctx, me, image_id, mask, encoding, f"revision-{rev.id}")


class DraftIn(SaveIn):
    annotation_id: int | None = None
    base_version: int | None = None


class DraftOut(BaseModel):
    image_id: int
    annotation_id: int | None
    base_version: int | None
    content: AnnotationContent
    has_mask: bool
    updated_at: dt.datetime


def _draft_out(d: Any) -> DraftOut:
    return DraftOut(
        image_id=d.image_id,
        annotation_id=d.annotation_id,
        base_version=d.base_version,
        content=AnnotationContent.model_validate(d.content),
        has_mask=d.mask_digest is not None,
        updated_at=d.updated_at,
    )


@router.put("/images/{image_id}/draft", response_model=DraftOut)
def save_draft(image_id: int, body: DraftIn, ctx: CtxDep, me: PrincipalDep) -> DraftOut:
    """Autosave your unsaved work on an image (replaces your previous draft; not a
    revision). Saving a revision removes the draft."""
    mask = _decode(ctx, me, image_id, body)
    draft = drafts_svc.save_draft(
        ctx,
        me,
        image_id,
        content=body.content,
        mask=None if isinstance(mask, svc.Keep) else mask,
        annotation_id=body.annotation_id,
        base_version=body.base_version,
    )
    return _draft_out(draft)


@router.get(
    "/images/{image_id}/draft",
    response_model=DraftOut | None,
    responses={204: {"description": "No draft."}},
)
def get_draft(image_id: int, ctx: CtxDep, me: PrincipalDep) -> DraftOut | Response:
    draft = drafts_svc.get_draft(ctx, me, image_id)
    return _draft_out(draft) if draft else Response(status_code=204)


@router.get("/images/{image_id}/draft/mask", response_class=Response)
def get_draft_mask(
    image_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    encoding: MaskEncoding = Query(default=MaskEncoding.RAW_GZIP),
) -> Response:
    """The draft's mask: ``raw-gzip`` (shape and dtype in headers) or ``nifti``."""
    draft = drafts_svc.get_draft(ctx, me, image_id)
    if draft is None or draft.mask_digest is None:
        return Response(status_code=204)
    mask = decode_array(ctx.blobs.read_bytes(draft.mask_digest))
    return _mask_response(ctx, me, image_id, mask, encoding, f"draft-{image_id}")


@router.delete("/images/{image_id}/draft", status_code=status.HTTP_204_NO_CONTENT)
def discard_draft(image_id: int, ctx: CtxDep, me: PrincipalDep) -> None:
    drafts_svc.discard_draft(ctx, me, image_id)
