"""Reading the audit log: filtered pages for the UI, and full exports to files."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from medlabel.security.audit.actions import AuditAction
from medlabel.security.audit.chain import format_at
from medlabel.storage.db.models.audit import AuditEvent, AuditHead

#: the columns of an export, in order
FIELDS = (
    "id",
    "at",
    "actor_id",
    "actor",
    "action",
    "target_type",
    "target_id",
    "project_id",
    "client",
    "details",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class AuditFilter:
    """Which events to list or export (all given conditions must hold).

    ``action`` is an exact action or a prefix ending in ``.`` (``"annotation."``).
    ``since`` is inclusive, ``until`` exclusive.
    """

    actor: str | None = None
    actor_id: int | None = None
    action: str | None = None
    project_id: int | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.action and not self.action.endswith("."):
            try:
                AuditAction(self.action)
            except ValueError:
                raise ValueError(
                    f"unknown audit action {self.action!r}; "
                    f"use one of {', '.join(a.value for a in AuditAction)} or a prefix like "
                    "'annotation.'"
                ) from None
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=dt.UTC))
        if self.since and self.until and self.since >= self.until:
            raise ValueError("'since' must be earlier than 'until'")

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        if self.actor:
            stmt = stmt.where(func.lower(AuditEvent.actor) == self.actor.lower())
        if self.actor_id is not None:
            stmt = stmt.where(AuditEvent.actor_id == self.actor_id)
        if self.action:
            if self.action.endswith("."):
                stmt = stmt.where(AuditEvent.action.startswith(self.action, autoescape=True))
            else:
                stmt = stmt.where(AuditEvent.action == self.action)
        if self.project_id is not None:
            stmt = stmt.where(AuditEvent.project_id == self.project_id)
        if self.target_type:
            stmt = stmt.where(AuditEvent.target_type == self.target_type)
        if self.target_id:
            stmt = stmt.where(AuditEvent.target_id == self.target_id)
        if self.since is not None:
            stmt = stmt.where(AuditEvent.at >= self.since)
        if self.until is not None:
            stmt = stmt.where(AuditEvent.at < self.until)
        return stmt


@dataclass
class AuditPage:
    items: list[AuditEvent]
    total: int


def list_events(
    session: Session, where: AuditFilter | None = None, *, limit: int = 100, offset: int = 0
) -> AuditPage:
    """A page of events, newest first."""
    if not 1 <= limit <= 1000 or offset < 0:
        raise ValueError("limit must be within 1..1000 and offset non-negative")
    where = where or AuditFilter()
    stmt = where.apply(select(AuditEvent))
    total = session.scalar(where.apply(select(func.count(AuditEvent.id)))) or 0
    items = list(session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(limit).offset(offset)))
    return AuditPage(items, total)


def head(session: Session) -> tuple[int, str]:
    """The id and hash of the newest event (``(0, GENESIS)`` for an empty log)."""
    from medlabel.security.audit.chain import GENESIS

    row = session.get(AuditHead, 1)
    return (row.last_id, row.last_hash) if row is not None else (0, GENESIS)


def event_dict(event: AuditEvent) -> dict[str, Any]:
    """One event as plain JSON values (``at`` as ISO 8601 UTC)."""
    return {
        "id": event.id,
        "at": format_at(event.at),
        "actor_id": event.actor_id,
        "actor": event.actor,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "project_id": event.project_id,
        "client": event.client,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def iter_events(
    session: Session, where: AuditFilter | None = None, *, chunk: int = 5000
) -> Iterator[AuditEvent]:
    """Matching events in id order, fetched in chunks."""
    where = where or AuditFilter()
    last = 0
    while True:
        stmt = where.apply(select(AuditEvent)).where(AuditEvent.id > last)
        batch = list(session.scalars(stmt.order_by(AuditEvent.id).limit(chunk)))
        yield from batch
        if len(batch) < chunk:
            return
        last = batch[-1].id
        session.expunge_all()


def export_events(
    session: Session, out: IO[str], fmt: str, where: AuditFilter | None = None
) -> int:
    """Write matching events to ``out`` as ``jsonl`` (one object per line) or ``csv``
    (details as JSON text); returns how many were written.

    Raises
    ------
    ValueError
        Unknown format.
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r}; use jsonl or csv")
    n = 0
    writer = csv.DictWriter(out, fieldnames=FIELDS) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for event in iter_events(session, where):
        row = event_dict(event)
        if writer is not None:
            row["details"] = json.dumps(row["details"], sort_keys=True, ensure_ascii=False)
            writer.writerow(row)
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n


def export_format(path: Path) -> str:
    """``jsonl`` or ``csv`` from a file name.

    Raises
    ------
    ValueError
        Neither suffix.
    """
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise ValueError(f"write the audit export to a .jsonl or .csv file, not {path.name!r}")
