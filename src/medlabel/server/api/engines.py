"""The annotation engines this server offers (tools and models that propose masks)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import proposals as svc

router = APIRouter(tags=["engines"])


class ParamOut(BaseModel):
    name: str
    kind: str
    default: Any
    help: str
    minimum: float | None
    maximum: float | None
    choices: list[str]


class EngineOut(BaseModel):
    name: str
    title: str
    description: str
    prompts: list[str]
    required: list[str]
    params: list[ParamOut]
    volumetric: bool
    available: bool
    loaded: bool
    message: str


@router.get("/engines", response_model=list[EngineOut])
def list_engines(
    ctx: CtxDep,
    me: PrincipalDep,
    project_id: Annotated[
        int | None,
        Query(
            description="Describe ``project-model`` (the AI box backed by the project's "
            "active segmentation model) for this project: available only if it has one."
        ),
    ] = None,
) -> list[EngineOut]:
    """Every engine, with the prompts it takes (at least one of ``required``), its
    parameters, and whether it is installed (``available``) and ready (``loaded``)."""
    return [
        EngineOut(
            name=e.name,
            title=e.title,
            description=e.description,
            prompts=e.prompts,
            required=e.required,
            params=[ParamOut.model_validate(p) for p in e.params],
            volumetric=e.volumetric,
            available=e.available,
            loaded=e.loaded,
            message=e.message,
        )
        for e in svc.list_engines(ctx, me, project_id)
    ]
