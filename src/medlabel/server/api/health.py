"""Liveness and readiness (no authentication: load balancers and orchestrators probe
them). Readiness answers 503 when this process should not get traffic."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import text

from medlabel import __version__
from medlabel.server.deps import CtxDep
from medlabel.services.context import Context
from medlabel.storage.db.migrate import current_revision, head_revision

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, Any]:
    """The process is up (liveness)."""
    return {"status": "ok", "version": __version__}


def _database(ctx: Context) -> tuple[bool, bool]:
    """(answers, schema current)."""
    try:
        with ctx.db.read() as s:
            s.execute(text("SELECT 1"))
        return True, current_revision(ctx.db.engine) == head_revision()
    except Exception:  # any failure means "not ready"; the reason goes to the log
        log.warning("readiness: the database does not answer", exc_info=True)
        return False, False


def _blobs(ctx: Context) -> bool:
    try:
        return ctx.blobs.exists(ctx.blobs.put_bytes(b"medlabel-ready").digest)
    except Exception:  # local disk full or read-only, object storage unreachable...
        log.warning("readiness: the blob store is not writable", exc_info=True)
        return False


@router.get("/ready", responses={503: {"description": "Not ready: see the failed checks."}})
def ready(ctx: CtxDep, response: Response) -> dict[str, Any]:
    """Ready for traffic: the database answers at the current schema, the blob store
    (local folder or object storage) is writable and the job executor runs. HTTP 503
    otherwise, with the failed checks in ``problems`` (no internal details: those are
    logged)."""
    database, schema_ok = _database(ctx)
    blobs_ok = _blobs(ctx)
    jobs_problem = ctx.jobs_problem()
    problems = []
    if not database:
        problems.append("the database does not answer")
    elif not schema_ok:
        problems.append("the database schema is not current (run `medlabel db upgrade`)")
    if not blobs_ok:
        problems.append("the blob store is not writable")
    if jobs_problem is not None:
        problems.append(jobs_problem)
    if problems:
        response.status_code = 503
    return {
        "status": "ok" if not problems else "unavailable",
        "database": "ok" if database else "error",
        "schema_current": schema_ok,
        "blobs": blobs_ok,
        "blob_store": type(ctx.blobs).__name__,
        "jobs": jobs_problem is None,
        "problems": problems,
    }
