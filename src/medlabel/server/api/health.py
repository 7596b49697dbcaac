"""Liveness and readiness (no authentication)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from medlabel import __version__
from medlabel.server.deps import CtxDep
from medlabel.storage.db.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, Any]:
    """The process is up."""
    return {"status": "ok", "version": __version__}


@router.get("/ready")
def ready(ctx: CtxDep) -> dict[str, Any]:
    """The database answers and its schema is current; the blob store is writable."""
    with ctx.db.read() as s:
        s.execute(text("SELECT 1"))
    schema_ok = current_revision(ctx.db.engine) == head_revision()
    blobs_ok = ctx.blobs.exists(ctx.blobs.put_bytes(b"medlabel-ready").digest)
    status = "ok" if schema_ok and blobs_ok else "degraded"
    return {"status": status, "database": "ok", "schema_current": schema_ok, "blobs": blobs_ok}
