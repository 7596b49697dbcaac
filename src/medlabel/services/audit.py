"""The audit log for administrators: list, verify and export events."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from medlabel.core.errors import InvalidInputError
from medlabel.security import audit
from medlabel.security.audit import AuditAction, VerifyResult, verify_chain
from medlabel.security.audit.query import (
    AuditFilter,
    AuditPage,
    export_events,
    export_format,
    head,
    list_events,
)
from medlabel.services.access import Principal, require_admin
from medlabel.services.context import Context


def make_filter(
    *,
    actor: str | None = None,
    actor_id: int | None = None,
    action: str | None = None,
    project_id: int | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> AuditFilter:
    """An :class:`AuditFilter`, with bad values reported as :class:`InvalidInputError`."""
    try:
        return AuditFilter(
            actor=actor or None,
            actor_id=actor_id,
            action=action or None,
            project_id=project_id,
            target_type=target_type or None,
            target_id=target_id or None,
            since=since,
            until=until,
        )
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def list_audit(
    ctx: Context,
    actor: Principal,
    where: AuditFilter | None = None,
    *,
    limit: int = 100,
    offset: int = 0,
) -> tuple[AuditPage, tuple[int, str]]:
    """A page of events (newest first) and the chain's head ``(id, hash)``; admins only."""
    require_admin(actor)
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInputError("limit must be within 1..1000 and offset non-negative")
    with ctx.db.read() as s:
        return list_events(s, where, limit=limit, offset=offset), head(s)


def verify_audit(ctx: Context, actor: Principal | None, anchor: str | None = None) -> VerifyResult:
    """Recompute the hash chain (admins; ``actor`` None is the machine's operator).

    Raises
    ------
    InvalidInputError
        ``anchor`` is not a SHA-256 hash.
    """
    if actor is not None:
        require_admin(actor)
    with ctx.db.read() as s:
        if not ctx.db.is_sqlite:  # one snapshot for the chain and its head
            s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        try:
            return verify_chain(s, anchor=anchor or None)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None


def audit_head(ctx: Context) -> tuple[int, str]:
    """The id and hash of the newest event: an anchor to keep elsewhere."""
    with ctx.db.read() as s:
        return head(s)


def export_audit(
    ctx: Context, actor: Principal | None, out: Path, where: AuditFilter | None = None
) -> tuple[int, tuple[int, str]]:
    """Write events to ``out`` (``.jsonl`` or ``.csv``) and record the export; returns the
    number of events written and the head ``(id, hash)`` at the time.

    Raises
    ------
    InvalidInputError
        Unknown file type, or ``out`` exists.
    """
    if actor is not None:
        require_admin(actor)
    try:
        fmt = export_format(out)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    if out.exists():
        raise InvalidInputError(f"{out} exists; choose a new file name")
    where = where or AuditFilter()
    with ctx.db.read() as s:
        top = head(s)
        with out.open("x", encoding="utf-8", newline="") as fh:
            n = export_events(s, fh, fmt, where)
    with ctx.db.write() as s:
        audit.record(
            s,
            actor,
            AuditAction.AUDIT_EXPORT,
            project_id=where.project_id,
            details={"format": fmt, "events": n, "head_id": top[0]},
        )
    return n, top
