"""AI proposals: ask an engine for a mask, then accept it into your annotation or reject it."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field, model_validator

from medlabel.annotation.enums import ProposalState
from medlabel.core.errors import InvalidInputError
from medlabel.server.api.annotations import AnnotationOut, annotation_out
from medlabel.server.api.masks import MaskIn
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import proposals as svc
from medlabel.services.masks import MaskEncoding, encode_raw_gzip
from medlabel.storage.db.models import Proposal

router = APIRouter(tags=["proposals"])

Coord = tuple[float, float, float]


class PreviousIn(BaseModel):
    """Exactly one of: an earlier proposal of yours on this image, your current mask of
    the label (``annotation: true``), or a mask of the slice (``plane``: ``raw-gzip`` of
    the slice's 2D shape, the two axes other than ``axis`` in order)."""

    proposal: int | None = None
    annotation: Literal[True] | None = None
    plane: MaskIn | None = None

    @model_validator(mode="after")
    def _one(self) -> PreviousIn:
        given = [n for n in ("proposal", "annotation", "plane") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("previous takes exactly one of proposal, annotation or plane")
        return self


class ProposeIn(BaseModel):
    engine: str = Field(min_length=1, max_length=100, description="See GET /api/engines.")
    label: str = Field(min_length=1, max_length=64, description="A mask label of the project.")
    axis: int = Field(default=0, description="Slice axis: 0 plane, 1 row, 2 column.")
    index: int | None = Field(default=None, description="Slice index; null: whole volume.")
    box: tuple[Coord, Coord] | None = Field(
        default=None, description="Two opposite corners [[p, r, c], [p, r, c]] in voxels."
    )
    positive: list[Coord] = Field(default_factory=list, max_length=svc.MAX_POINTS)
    negative: list[Coord] = Field(default_factory=list, max_length=svc.MAX_POINTS)
    foreground: list[Coord] = Field(
        default_factory=list, max_length=svc.MAX_POINTS, description="Scribble on the structure."
    )
    background: list[Coord] = Field(
        default_factory=list, max_length=svc.MAX_POINTS, description="Scribble outside it."
    )
    scribble_radius: float = Field(
        default=2.0, ge=0, le=svc.MAX_SCRIBBLE_RADIUS, description="In voxels."
    )
    previous: PreviousIn | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class MaskOut(BaseModel):
    """The cropped mask: gzip of C-order uint8 (1 inside) of the proposal's ``shape``."""

    encoding: Literal["raw-gzip"] = "raw-gzip"
    dtype: Literal["uint8"] = "uint8"
    data: str


class ProposalOut(BaseModel):
    id: int
    image_id: int
    project_id: int
    user_id: int
    engine: str
    version: str
    label: str
    seconds: float
    origin: list[int] = Field(description="Voxel (p, r, c) of the mask's first voxel.")
    shape: list[int] = Field(description="Shape (planes, rows, columns) of the cropped mask.")
    voxels: int
    info: dict[str, Any]
    prompt: dict[str, Any]
    state: ProposalState
    revision_id: int | None
    created_at: dt.datetime
    decided_at: dt.datetime | None
    mask: MaskOut | None = Field(default=None, description="Omitted in lists.")


class DecideIn(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=svc.MAX_DECIDE)


class AcceptIn(DecideIn):
    base_version: int | None = Field(
        default=None, description="Your annotation's version; null if you have none yet."
    )
    mode: svc.MergeMode = svc.MergeMode.ADD


class AcceptOut(BaseModel):
    annotation: AnnotationOut
    accepted: list[int]


class RejectOut(BaseModel):
    rejected: list[int]


def proposal_out(row: Proposal, mask: np.ndarray | None = None) -> ProposalOut:
    return ProposalOut(
        id=row.id,
        image_id=row.image_id,
        project_id=row.project_id,
        user_id=row.user_id,
        engine=row.engine_name,
        version=row.engine_version,
        label=row.label,
        seconds=row.seconds,
        origin=list(row.origin),
        shape=list(row.shape),
        voxels=row.voxels,
        info=row.info or {},
        prompt=row.prompt or {},
        state=ProposalState(row.state),
        revision_id=row.revision_id,
        created_at=row.created_at,
        decided_at=row.decided_at,
        mask=None
        if mask is None
        else MaskOut(data=base64.b64encode(encode_raw_gzip(mask.astype(np.uint8))).decode()),
    )


def _previous(body: PreviousIn | None) -> svc.Previous | None:
    if body is None:
        return None
    if body.proposal is not None:
        return svc.FromProposal(body.proposal)
    if body.annotation:
        return svc.FromAnnotation()
    assert body.plane is not None
    if body.plane.encoding != MaskEncoding.RAW_GZIP:
        raise InvalidInputError("previous.plane must be raw-gzip (a 2D mask of the slice)")
    try:
        data = base64.b64decode(body.plane.data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("previous.plane.data is not valid base64") from None
    return svc.FromPlane(data, body.plane.dtype)


@router.post(
    "/images/{image_id}/proposals",
    response_model=ProposalOut,
    status_code=status.HTTP_201_CREATED,
)
def propose(image_id: int, body: ProposeIn, ctx: CtxDep, me: PrincipalDep) -> ProposalOut:
    """Run an engine on this image (a slice, or the volume) for one of the project's mask
    labels; the proposal is kept, pending, until you accept or reject it."""
    view = svc.propose(
        ctx,
        me,
        image_id,
        engine=body.engine,
        label=body.label,
        axis=body.axis,
        index=body.index,
        box=body.box,
        positive=body.positive,
        negative=body.negative,
        foreground_points=body.foreground,
        background_points=body.background,
        scribble_radius=body.scribble_radius,
        previous=_previous(body.previous),
        params=body.params,
    )
    return proposal_out(view.row, view.mask)


@router.get("/images/{image_id}/proposals", response_model=list[ProposalOut])
def list_proposals(
    image_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    state: ProposalState | None = Query(default=None),
) -> list[ProposalOut]:
    """Your proposals on this image, oldest first (without masks)."""
    return [proposal_out(p) for p in svc.list_proposals(ctx, me, image_id, state=state)]


@router.get("/proposals/{proposal_id}", response_model=ProposalOut)
def get_proposal(proposal_id: int, ctx: CtxDep, me: PrincipalDep) -> ProposalOut:
    view = svc.get_proposal(ctx, me, proposal_id)
    return proposal_out(view.row, view.mask)


@router.post(
    "/images/{image_id}/proposals/accept",
    response_model=AcceptOut,
    responses={409: {"description": "Already decided, or your annotation changed."}},
)
def accept(image_id: int, body: AcceptIn, ctx: CtxDep, me: PrincipalDep) -> AcceptOut:
    """Merge pending proposals (one label) into your annotation as one new revision
    (``add``: their voxels get the label; ``replace``: the label is first cleared inside
    each proposal's box)."""
    decision = svc.decide(
        ctx, me, image_id, body.ids, accept=True, base_version=body.base_version, mode=body.mode
    )
    assert decision.annotation is not None
    return AcceptOut(annotation=annotation_out(decision.annotation), accepted=decision.ids)


@router.post(
    "/images/{image_id}/proposals/reject",
    response_model=RejectOut,
    responses={409: {"description": "Already decided."}},
)
def reject(image_id: int, body: DecideIn, ctx: CtxDep, me: PrincipalDep) -> RejectOut:
    """Drop pending proposals; nothing changes in your annotation."""
    decision = svc.decide(ctx, me, image_id, body.ids, accept=False)
    return RejectOut(rejected=decision.ids)
