"""Images: listing, metadata, rendered slices, thumbnails and raw volume downloads."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from medlabel import __version__
from medlabel.annotation.enums import ImageStatus, LabelKind
from medlabel.imaging.filters import FilterKind, ViewFilter
from medlabel.imaging.windowing import CT_PRESETS
from medlabel.server.api.masks import MaskIn, decode_mask_in
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import images as svc
from medlabel.storage.db.models import Image

router = APIRouter(tags=["images"])

_IMMUTABLE = {"Cache-Control": "private, max-age=86400, immutable"}


class ImageOut(BaseModel):
    id: int
    project_id: int
    series_id: int | None
    name: str
    modality: str
    source_format: str
    shape: list[int]
    channels: int
    dtype: str
    spacing: list[float]
    affine: list[list[float]]
    geometry_known: bool
    status: ImageStatus
    window_center: float | None
    window_width: float | None
    meta: dict[str, Any]
    created_at: dt.datetime


class ImageDetail(ImageOut):
    context: dict[str, Any]


class ImagePageOut(BaseModel):
    items: list[ImageOut]
    total: int


def image_out(image: Image) -> ImageOut:
    affine = np.asarray(image.affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    return ImageOut(
        id=image.id,
        project_id=image.project_id,
        series_id=image.series_id,
        name=image.name,
        modality=image.modality,
        source_format=image.source_format,
        shape=list(image.shape),
        channels=image.channels,
        dtype=image.dtype,
        spacing=[round(float(x), 6) for x in spacing],
        affine=affine.tolist(),
        geometry_known=image.geometry_known,
        status=ImageStatus(image.status),
        window_center=image.window_center,
        window_width=image.window_width,
        meta=image.meta or {},
        created_at=image.created_at,
    )


@router.get("/projects/{project_id}/images", response_model=ImagePageOut)
def list_images(
    project_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    status: ImageStatus | None = None,
    modality: str | None = Query(default=None, max_length=16),
    q: str | None = Query(default=None, max_length=200, description="Name contains."),
    sort: str = Query(default="id", description="id, name, created, status; '-' for desc."),
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
) -> ImagePageOut:
    page = svc.list_images(
        ctx,
        me,
        project_id,
        status=status.value if status else None,
        modality=modality,
        q=q,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return ImagePageOut(items=[image_out(i) for i in page.items], total=page.total)


@router.get(
    "/projects/{project_id}/next-image",
    response_model=ImageOut | None,
    responses={204: {"description": "No unlabelled image left."}},
)
def next_image(
    project_id: int, ctx: CtxDep, me: PrincipalDep, after: int | None = None
) -> ImageOut | Response:
    """The next unlabelled image after ``after``, wrapping around."""
    image = svc.next_image(ctx, me, project_id, after=after)
    return image_out(image) if image else Response(status_code=204)


@router.get("/images/{image_id}", response_model=ImageDetail)
def get_image(image_id: int, ctx: CtxDep, me: PrincipalDep) -> ImageDetail:
    image = svc.get_image(ctx, me, image_id)
    context = svc.image_context(ctx, me, image_id)
    return ImageDetail(**image_out(image).model_dump(), context=context)


@router.get("/images/{image_id}/thumbnail.png", response_class=Response)
def thumbnail(image_id: int, ctx: CtxDep, me: PrincipalDep) -> Response:
    return Response(
        svc.thumbnail_png(ctx, me, image_id), media_type="image/png", headers=_IMMUTABLE
    )


@router.get("/images/{image_id}/slice.png", response_class=Response)
def slice_png(
    image_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    view: str | None = Query(default=None, description="axial, coronal or sagittal"),
    index: int | None = Query(default=None, ge=0, description="Default: the middle slice."),
    preset: str | None = Query(default=None, description="CT window preset, e.g. lung."),
    center: float | None = None,
    width: float | None = None,
) -> Response:
    """A slice as PNG, windowed (preset, explicit center/width, or the image's default),
    oriented in radiological convention."""
    png = svc.slice_png(
        ctx, me, image_id, view=view, index=index, preset=preset, center=center, width=width
    )
    return Response(png, media_type="image/png", headers=_IMMUTABLE)


@router.get("/images/{image_id}/volume.nii", response_class=StreamingResponse)
def volume(
    image_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    filter: FilterKind | None = Query(default=None, description="A view filter to apply."),
    size: int = Query(default=3, ge=3, le=15, description="mean/median window, pixels"),
    sigma: float = Query(default=1.0, gt=0, le=10, description="gaussian/sharpen, pixels"),
    amount: float = Query(default=1.0, gt=0, le=5, description="sharpen strength"),
    clip_limit: float = Query(default=0.01, gt=0, le=1, description="CLAHE contrast limit"),
) -> StreamingResponse:
    """The de-identified pixel data as an uncompressed NIfTI-1 file (for viewers),
    optionally through a view filter (computed per plane; stored pixels never change)."""
    spec = None
    if filter is not None:
        spec = ViewFilter(kind=filter, size=size, sigma=sigma, amount=amount, clip_limit=clip_limit)
    size_bytes, chunks = svc.volume_nifti_stream(ctx, me, image_id, spec)
    headers = {"Content-Length": str(size_bytes), **_IMMUTABLE}
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


class StatsIn(BaseModel):
    mask: MaskIn


class StatsOut(BaseModel):
    value: int
    label: str | None
    voxels: int
    area_mm2: float | None
    volume_mm3: float | None
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    units: str | None


@router.post("/images/{image_id}/stats", response_model=list[StatsOut])
def stats(image_id: int, body: StatsIn, ctx: CtxDep, me: PrincipalDep) -> list[StatsOut]:
    """Area (2D) or volume (3D) and intensity statistics (HU for CT) of each label of a
    mask, e.g. the one being drawn."""
    image = svc.get_image(ctx, me, image_id)
    mask = decode_mask_in(body.mask, image)
    units = "HU" if image.modality == "CT" else (image.meta or {}).get("units")
    return [
        StatsOut(label=name, units=units, **st.__dict__)
        for st, name in svc.region_statistics(ctx, me, image_id, mask)
    ]


class MetaOut(BaseModel):
    version: str
    window_presets: dict[str, dict[str, float]]
    filters: list[str]
    label_kinds: list[str]


@router.get("/meta", response_model=MetaOut)
def meta(me: PrincipalDep) -> MetaOut:
    """Vocabularies the UI needs: window presets, view filters, label kinds."""
    return MetaOut(
        version=__version__,
        window_presets={k: {"center": w.center, "width": w.width} for k, w in CT_PRESETS.items()},
        filters=[f.value for f in FilterKind],
        label_kinds=[k.value for k in LabelKind],
    )


@router.get("/images/{image_id}/dicom-header")
def dicom_header(image_id: int, ctx: CtxDep, me: PrincipalDep) -> list[dict[str, Any]]:
    """The stored (de-identified) DICOM header of the image's first instance."""
    return svc.dicom_header(ctx, me, image_id)
