"""The model registry of a project (versions made by ``train`` jobs) and the uncertainty
maps of pre-annotation proposals."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from medlabel.server.api.annotations import _mask_response
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import models as svc
from medlabel.services import proposals as proposals_svc
from medlabel.services.learning import proposal_uncertainty
from medlabel.services.masks import MaskEncoding
from medlabel.services.proposal_prompts import crop_slices
from medlabel.storage.db.models import Image, ModelVersion

router = APIRouter(tags=["models"])


class ModelOut(BaseModel):
    id: int
    project_id: int
    task: str
    name: str
    version: int = Field(description="Counts up per project and task.")
    active: bool = Field(description="The version pre-annotation uses by default.")
    metrics: dict[str, Any] = Field(description="Validation metrics of the best epoch.")
    size_bytes: int
    revision_ids: list[int] = Field(description="Annotation revisions it learned from.")
    created_by: int | None
    created_at: dt.datetime
    job_id: int | None
    summary: dict[str, Any] = Field(description="Architecture, epochs, labels, sizes.")
    card: dict[str, Any] | None = Field(default=None, description="The whole model card.")


def model_out(row: ModelVersion, *, card: bool = False) -> ModelOut:
    c = row.card or {}
    summary = {
        "architecture": (c.get("architecture") or {}).get("name"),
        # networks averaged by a cross-validated ensemble (None: one network)
        "ensemble_members": ((c.get("architecture") or {}).get("params") or {}).get("members"),
        "labels": {str(lab["value"]): lab["name"] for lab in c.get("labels", [])},
        "epochs_run": c.get("epochs_run"),
        "best_epoch": c.get("best_epoch"),
        "stop_reason": c.get("stop_reason"),
        "training_seconds": c.get("training_seconds"),
        "parameters": c.get("parameters"),
        "onnx": c.get("onnx") is not None,
        "train_images": len((c.get("data") or {}).get("train", [])),
        "val_images": len((c.get("data") or {}).get("val", [])),
    }
    return ModelOut(
        id=row.id,
        project_id=row.project_id,
        task=row.task,
        name=row.name,
        version=row.version,
        active=row.active,
        metrics=row.metrics or {},
        size_bytes=row.size_bytes,
        revision_ids=[int(r) for r in row.revision_ids or []],
        created_by=row.created_by,
        created_at=row.created_at,
        job_id=row.job_id,
        summary=summary,
        card=c if card else None,
    )


@router.get("/projects/{project_id}/models", response_model=list[ModelOut])
def list_models(
    project_id: int, ctx: CtxDep, me: PrincipalDep, task: str | None = Query(default=None)
) -> list[ModelOut]:
    """The project's model versions by task, newest first. Train one with a job of kind
    ``train`` (``POST /api/projects/{id}/jobs``); pre-annotate with ``preannotate``."""
    return [model_out(r) for r in svc.list_models(ctx, me, project_id, task=task)]


@router.get("/models/{model_id}", response_model=ModelOut)
def get_model(model_id: int, ctx: CtxDep, me: PrincipalDep) -> ModelOut:
    """A version with its whole model card (training history, plan, data)."""
    return model_out(svc.get_model(ctx, me, model_id), card=True)


@router.post("/models/{model_id}/activate", response_model=ModelOut)
def activate_model(model_id: int, ctx: CtxDep, me: PrincipalDep) -> ModelOut:
    """Make this version the active one of its task (reviewers)."""
    return model_out(svc.activate_model(ctx, me, model_id))


@router.delete("/models/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(model_id: int, ctx: CtxDep, me: PrincipalDep) -> Response:
    """Delete a version and its stored files (reviewers)."""
    svc.delete_model(ctx, me, model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/models/{model_id}/download", response_class=Response)
def download_model(model_id: int, ctx: CtxDep, me: PrincipalDep) -> Response:
    """The model directory as a tar (``model.json``, ``weights.pt``, ``model.onnx``), to
    use with ``medlabel predict`` elsewhere (reviewers; recorded in the audit log)."""
    row, data = svc.download_model(ctx, me, model_id)
    name = f"{row.task}-v{row.version}-project{row.project_id}.tar"
    return Response(
        data,
        media_type="application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/proposals/{proposal_id}/uncertainty", response_class=Response)
def proposal_uncertainty_map(
    proposal_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    encoding: MaskEncoding = Query(default=MaskEncoding.RAW_GZIP),
) -> Response:
    """A pre-annotation proposal's uncertainty on the image's grid, like a mask: uint8,
    0 (sure) .. 255 (all classes equally likely), 0 outside the proposal's box;
    ``raw-gzip`` (shape and dtype in headers) or ``nifti``. 422 for proposals of other
    engines (they have no map)."""
    view = proposals_svc.get_proposal(ctx, me, proposal_id)
    crop = proposal_uncertainty(ctx, view.row)
    with ctx.db.read() as s:
        image = s.get(Image, view.row.image_id)
        assert image is not None
        shape = tuple(int(n) for n in image.shape[:3])
    full = np.zeros(shape, np.uint8)
    full[crop_slices(view.row.origin, view.row.shape, shape)] = crop
    response = _mask_response(
        ctx, me, view.row.image_id, full, encoding, f"uncertainty-{proposal_id}"
    )
    response.headers["X-Uncertainty-Scale"] = "255"
    return response


@router.get("/proposals/{proposal_id}/saliency", response_class=Response)
def proposal_saliency_map(
    proposal_id: int,
    ctx: CtxDep,
    me: PrincipalDep,
    encoding: MaskEncoding = Query(default=MaskEncoding.RAW_GZIP),
) -> Response:
    """A classification proposal's saliency map (Grad-CAM or occlusion: where the
    evidence for its class lies) on the image's grid, like the uncertainty map: uint8,
    0 (none) .. 255 (strongest); ``raw-gzip`` (shape and dtype in headers) or ``nifti``.
    422 for other proposals."""
    from medlabel.services.model_proposals import proposal_saliency

    view = proposals_svc.get_proposal(ctx, me, proposal_id)
    heat = proposal_saliency(ctx, view.row)
    response = _mask_response(ctx, me, view.row.image_id, heat, encoding, f"saliency-{proposal_id}")
    response.headers["X-Saliency-Scale"] = "255"
    response.headers["X-Saliency-Method"] = str(view.row.info.get("saliency_method", ""))
    return response
