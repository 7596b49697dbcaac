"""The audit log (administrators only): events, and verification of the hash chain."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from medlabel.security.audit import AuditAction
from medlabel.server.deps import CtxDep, PrincipalDep
from medlabel.services import audit as svc
from medlabel.services.access import require_admin

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: dt.datetime
    actor_id: int | None
    actor: str
    action: str
    target_type: str
    target_id: str
    project_id: int | None
    client: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPageOut(BaseModel):
    items: list[AuditEventOut]
    total: int
    head_id: int
    head_hash: str


class VerifyOut(BaseModel):
    ok: bool
    rows: int
    head_id: int
    head_hash: str
    seconds: float
    broken_id: int | None
    reason: str | None
    message: str


@router.get("", response_model=AuditPageOut)
def list_events(
    ctx: CtxDep,
    me: PrincipalDep,
    actor: str | None = Query(default=None, max_length=64, description="Username."),
    action: str | None = Query(
        default=None, max_length=40, description="An action, or a prefix such as 'annotation.'."
    ),
    project_id: int | None = Query(default=None, ge=1),
    target_type: str | None = Query(default=None, max_length=32),
    target_id: str | None = Query(default=None, max_length=64),
    since: dt.datetime | None = Query(default=None, description="Inclusive, ISO 8601."),
    until: dt.datetime | None = Query(default=None, description="Exclusive, ISO 8601."),
    limit: int = Query(default=50, ge=1, le=1000),
    offset: int = Query(default=0, ge=0),
) -> AuditPageOut:
    """Audit events, newest first."""
    where = svc.make_filter(
        actor=actor,
        action=action,
        project_id=project_id,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
    )
    page, (head_id, head_hash) = svc.list_audit(ctx, me, where, limit=limit, offset=offset)
    return AuditPageOut(
        items=[AuditEventOut.model_validate(e) for e in page.items],
        total=page.total,
        head_id=head_id,
        head_hash=head_hash,
    )


@router.get("/actions", response_model=list[str])
def actions(me: PrincipalDep) -> list[str]:
    """The vocabulary of audited actions."""
    require_admin(me)
    return [a.value for a in AuditAction]


@router.get("/verify", response_model=VerifyOut)
def verify(
    ctx: CtxDep,
    me: PrincipalDep,
    anchor: str | None = Query(
        default=None, max_length=64, description="A head hash exported earlier."
    ),
) -> VerifyOut:
    """Recompute the hash chain; reports the first broken row, if any."""
    return VerifyOut(**svc.verify_audit(ctx, me, anchor).to_dict())
