"""Annotations of images, their revision history and review state."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

import numpy as np
from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import AnnotationState, RevisionSource
from medlabel.core.errors import InvalidInputError
from medlabel.imaging.volume import Volume
from medlabel.io.nifti import write_nifti
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import annotations as svc
from medlabel.services import images as images_svc
from medlabel.services.masks import MaskEncoding, decode_mask, encode_raw_gzip
from medlabel.storage.db.models import Revision

router = APIRouter(tags=["annotations"])


class MaskIn(BaseModel):
    encoding: MaskEncoding = MaskEncoding.RAW_GZIP
    dtype: str = Field(default="uint8", description="uint8 or uint16 (raw-gzip only).")
    data: str = Field(description="Base64 of the encoded mask.")


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
    state: AnnotationState
    version: int
    head_revision_id: int | None
    approved_revision_id: int | None
    updated_at: dt.datetime
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
        state=AnnotationState(a.state),
        version=a.version,
        head_revision_id=a.head_revision_id,
        approved_revision_id=a.approved_revision_id,
        updated_at=a.updated_at,
        head=revision_out(view.head) if view.head else None,
    )


def _decode(ctx: Any, me: Any, image_id: int, body: SaveIn) -> np.ndarray | svc.Keep | None:
    if "mask" not in body.model_fields_set:
        return svc.KEEP_MASK
    if body.mask is None:
        return None
    try:
        data = base64.b64decode(body.mask.data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("mask.data is not valid base64") from None
    image = images_svc.get_image(ctx, me, image_id)
    return decode_mask(
        body.mask.encoding,
        data,
        shape=image.shape,
        affine=np.asarray(image.affine),
        dtype=body.mask.dtype,
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
    """``submit`` for review, ``approve`` / ``reject`` (reviewers), ``reopen`` as draft."""
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
    if encoding == MaskEncoding.RAW_GZIP:
        headers = {
            "X-Mask-Shape": ",".join(str(n) for n in mask.shape),
            "X-Mask-Dtype": str(mask.dtype),
        }
        return Response(encode_raw_gzip(mask), media_type="application/gzip", headers=headers)
    image = images_svc.get_image(
        ctx, me, svc.get_annotation(ctx, me, rev.annotation_id).annotation.image_id
    )
    data = write_nifti(Volume(mask, np.asarray(image.affine)))
    return Response(
        data,
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="revision-{rev.id}.nii.gz"'},
    )
