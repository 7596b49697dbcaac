"""Agreement between readers, the consensus of an image and where its readers disagree."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from medlabel.server.api.annotations import AnnotationOut, _mask_response, annotation_out
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import agreement as svc
from medlabel.services import consensus as consensus_svc
from medlabel.services.masks import MaskEncoding

router = APIRouter(tags=["agreement"])


def _finite(value: Any) -> Any:
    """JSON has no infinity: undefined distances (one reader marked nothing) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class ReaderOut(BaseModel):
    annotation_id: int
    revision_id: int
    reader: str
    state: str


class PairOut(BaseModel):
    label: str
    reader_a: str
    reader_b: str
    metrics: dict[str, float | None] = Field(
        description="Dice, IoU, HD95/ASSD (mm; null when one reader marked nothing), NSD, ..."
    )


class ImageAgreementOut(BaseModel):
    image_id: int
    readers: list[ReaderOut]
    masks: list[PairOut]
    boxes: list[PairOut]
    classes: dict[str, list[str]]
    consensus: ReaderOut | None
    against_consensus: list[PairOut]


def _pair(row: Any) -> PairOut:
    return PairOut(label=row.label, reader_a=row.a, reader_b=row.b, metrics=_finite(row.metrics))


def _reader(info: svc.ReaderInfo) -> ReaderOut:
    return ReaderOut(**info.__dict__)


@router.get("/images/{image_id}/agreement", response_model=ImageAgreementOut)
def image_agreement(
    image_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    include_drafts: bool = False,
    tolerance_mm: float = Query(1.0, gt=0, le=100),
) -> ImageAgreementOut:
    r = svc.image_agreement(
        ctx, me, image_id, include_drafts=include_drafts, tolerance_mm=tolerance_mm
    )
    return ImageAgreementOut(
        image_id=r.image_id,
        readers=[_reader(i) for i in r.readers],
        masks=[_pair(p) for p in r.masks],
        boxes=[_pair(p) for p in r.boxes],
        classes=r.classes,
        consensus=_reader(r.consensus) if r.consensus else None,
        against_consensus=[_pair(p) for p in r.against_consensus],
    )


class ClassAgreementOut(BaseModel):
    name: str
    pairs: list[dict[str, Any]]
    fleiss_kappa: float | None
    raters: int


class ProjectAgreementOut(BaseModel):
    project_id: int
    images_compared: int
    pairs: list[dict[str, Any]]
    readers: list[dict[str, Any]]
    boxes: list[dict[str, Any]]
    classes: list[ClassAgreementOut]
    images: list[dict[str, Any]]


@router.get("/projects/{project_id}/agreement", response_model=ProjectAgreementOut)
def project_agreement(
    project_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    tolerance_mm: float = Query(1.0, gt=0, le=100),
) -> ProjectAgreementOut:
    r = svc.project_agreement(ctx, me, project_id, tolerance_mm=tolerance_mm)
    classes = [
        ClassAgreementOut(
            name=c.name,
            pairs=[
                {"reader_a": a, "reader_b": b, "images": n, "kappa": k, "agreement": o}
                for a, b, n, k, o in c.pairs
            ],
            fleiss_kappa=c.fleiss,
            raters=c.raters,
        )
        for c in r.classes
    ]
    return ProjectAgreementOut(
        project_id=r.project_id,
        images_compared=r.images_compared,
        pairs=_finite(r.pairs),
        readers=_finite(r.readers),
        boxes=_finite(r.boxes),
        classes=_finite(classes),
        images=r.images,
    )


class ConsensusIn(BaseModel):
    method: consensus_svc.ConsensusMethod = consensus_svc.ConsensusMethod.STAPLE
    annotation_ids: list[int] | None = Field(
        default=None, description="Readings to combine (default: all submitted or approved)."
    )
    base_version: int | None = Field(
        default=None, description="The consensus version you saw, when one exists."
    )
    point_radius_mm: float = Field(default=5.0, gt=0, le=100)


class ConsensusOut(BaseModel):
    annotation: AnnotationOut
    readers: list[ReaderOut]
    disagreement_voxels: int
    tied_voxels: int
    performance: dict[str, dict[str, float]]


@router.post("/images/{image_id}/consensus", response_model=ConsensusOut)
def build_consensus(
    image_id: int, body: ConsensusIn, ctx: CtxDep, me: PrincipalDep
) -> ConsensusOut:
    r = consensus_svc.build_consensus(
        ctx,
        me,
        image_id,
        method=body.method,
        annotation_ids=body.annotation_ids,
        base_version=body.base_version,
        point_radius_mm=body.point_radius_mm,
    )
    return ConsensusOut(
        annotation=annotation_out(r.view),
        readers=[_reader(i) for i in r.readers],
        disagreement_voxels=r.disagreement_voxels,
        tied_voxels=r.tied_voxels,
        performance=r.performance,
    )


@router.get("/images/{image_id}/disagreement", response_class=Response)
def disagreement(
    image_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    encoding: MaskEncoding = MaskEncoding.RAW_GZIP,
) -> Response:
    """Voxels (1) where the image's finished readings differ, for the reviewer's overlay."""
    mask = consensus_svc.disagreement_mask(ctx, me, image_id)
    return _mask_response(ctx, me, image_id, mask, encoding, f"image-{image_id}-disagreement")
