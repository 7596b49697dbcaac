"""The hash chain: how a row's hash is computed, and how the whole chain is checked.

Each row's ``hash`` is the SHA-256 (hex) of its canonical text: its fields and the
previous row's hash (``prev_hash``; 64 zeros for the first row), as text, joined by the
unit separator U+001F (which no field may contain). Editing a row changes its hash;
deleting or reordering rows breaks the links (ids are consecutive, and each
``prev_hash`` must equal the hash before it); removing rows at the end is caught by the
one-row head table (which an attacker could also rewrite) or, reliably, by an *anchor*:
a head hash exported earlier that must still be in the chain.

The canonical text, field by field: the id in decimal; ``at`` in UTC as
``YYYY-MM-DD HH:MM:SS.ffffff``; the actor's id in decimal ("" for none); actor; action;
target type; target id; the project id in decimal ("" for none); client; details as
compact JSON with sorted keys (the stored text); the previous hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import String, Text, select, type_coerce
from sqlalchemy.orm import Session

from medlabel.storage.db.models.audit import AuditEvent, AuditHead

#: prev_hash of the first row, and last_hash of an empty chain
GENESIS = "0" * 64
#: rows fetched per query while verifying
CHUNK = 20_000
#: separates the fields of the hashed text
SEP = "\x1f"


def at_text(at: dt.datetime) -> str:
    """The canonical text of a timestamp: UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    if at.tzinfo is not None:
        at = at.astimezone(dt.UTC).replace(tzinfo=None)
    return at.isoformat(" ", "microseconds")


def format_at(at: dt.datetime) -> str:
    """A timestamp for people and exports: ISO 8601 UTC with a ``Z``."""
    return at_text(at).replace(" ", "T") + "Z"


def event_hash(
    *,
    id: int,
    at: dt.datetime | str,
    actor_id: int | None,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    project_id: int | None,
    client: str,
    details: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of one row's canonical text.

    ``details`` is the canonical JSON text of the details object, as stored; ``at`` a
    datetime or its :func:`at_text`.

    Examples
    --------
    >>> import datetime as dt
    >>> h = event_hash(id=1, at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), actor_id=None,
    ...     actor="", action="login", target_type="", target_id="", project_id=None,
    ...     client="", details="{}", prev_hash=GENESIS)
    >>> len(h)
    64
    """
    text = SEP.join(
        (
            str(id),
            at if isinstance(at, str) else at_text(at),
            "" if actor_id is None else str(actor_id),
            actor,
            action,
            target_type,
            target_id,
            "" if project_id is None else str(project_id),
            client,
            details,
            prev_hash,
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()


class Break(StrEnum):
    """Why verification stopped."""

    CONTENT = "content changed"
    MISSING = "row missing"
    ORDER = "out of order"
    TAIL = "rows missing at the end"
    ANCHOR = "anchor not found"
    HEAD = "head record changed"


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify_chain`."""

    ok: bool
    rows: int
    head_id: int
    head_hash: str
    seconds: float
    #: the first row found broken (None when ok, or for a missing anchor)
    broken_id: int | None = None
    reason: Break | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "head_id": self.head_id,
            "head_hash": self.head_hash,
            "seconds": round(self.seconds, 3),
            "broken_id": self.broken_id,
            "reason": self.reason.value if self.reason else None,
            "message": self.message,
        }


def _columns(raw_at: bool) -> tuple[Any, ...]:
    return (
        AuditEvent.id,
        # SQLite keeps the timestamp as exactly the canonical text: hash it unparsed
        type_coerce(AuditEvent.at, String) if raw_at else AuditEvent.at,
        AuditEvent.actor_id,
        AuditEvent.actor,
        AuditEvent.action,
        AuditEvent.target_type,
        AuditEvent.target_id,
        AuditEvent.project_id,
        AuditEvent.client,
        type_coerce(AuditEvent.details, Text),  # the stored canonical text, not parsed
        AuditEvent.prev_hash,
        AuditEvent.hash,
    )


def _rows(session: Session, chunk: int) -> Iterator[Any]:
    """All rows in id order, in chunks (keyset paging: no long-lived cursor)."""
    conn = session.connection()
    columns = _columns(conn.dialect.name == "sqlite")
    last = 0
    while True:
        stmt = select(*columns).where(AuditEvent.id > last).order_by(AuditEvent.id).limit(chunk)
        batch = conn.execute(stmt).all()
        yield from batch
        if len(batch) < chunk:
            return
        last = batch[-1][0]


def check_rows(rows: Iterable[Any], anchor: str | None = None) -> VerifyResult:
    """Check a stream of rows ``(id, at, actor_id, actor, action, target_type, target_id,
    project_id, client, details_text, prev_hash, hash)`` in id order (``at`` a datetime
    or its canonical text).

    The result's ``head_id``/``head_hash`` are those of the last good row.
    """
    start = time.perf_counter()
    sha256 = hashlib.sha256
    join = SEP.join
    prev = GENESIS
    expected = 1
    count = 0
    anchor_seen = anchor is None

    def broken(row_id: int | None, reason: Break, message: str) -> VerifyResult:
        return VerifyResult(
            ok=False,
            rows=count,
            head_id=expected - 1,
            head_hash=prev,
            seconds=time.perf_counter() - start,
            broken_id=row_id,
            reason=reason,
            message=message,
        )

    for row in rows:
        row_id, at, actor_id, actor, action, ttype, tid, project_id, client, det, link, stored = row
        if row_id != expected:
            missing = f"{expected}" if row_id == expected + 1 else f"{expected}-{row_id - 1}"
            return broken(expected, Break.MISSING, f"row(s) {missing} deleted")
        if link != prev:
            return broken(
                row_id,
                Break.ORDER,
                f"row {row_id} does not follow row {row_id - 1} (rows reordered or a row replaced)",
            )
        text = join(
            (
                str(row_id),
                at if at.__class__ is str else at_text(at),
                "" if actor_id is None else str(actor_id),
                actor,
                action,
                ttype,
                tid,
                "" if project_id is None else str(project_id),
                client,
                det,
                prev,
            )
        )
        digest = sha256(text.encode()).hexdigest()
        if digest != stored:
            return broken(row_id, Break.CONTENT, f"row {row_id} was changed after it was written")
        prev = digest
        expected += 1
        count += 1
        if not anchor_seen and digest == anchor:
            anchor_seen = True
    if not anchor_seen:
        return broken(
            None,
            Break.ANCHOR,
            "the anchor hash is not in the chain: rows were removed from the end, "
            "or the chain was rewritten",
        )
    return VerifyResult(
        ok=True,
        rows=count,
        head_id=expected - 1,
        head_hash=prev,
        seconds=time.perf_counter() - start,
    )


def verify_chain(
    session: Session, *, anchor: str | None = None, chunk: int = CHUNK
) -> VerifyResult:
    """Recompute the whole chain in id order and compare it with the head row.

    Parameters
    ----------
    session
        A read session; for a consistent result on PostgreSQL it should run at
        REPEATABLE READ (SQLite read transactions are snapshots).
    anchor
        A head hash exported earlier (``medlabel audit head``): it must be the hash of
        some row, else rows were cut from the end or the chain was rebuilt.

    Raises
    ------
    ValueError
        ``anchor`` is not 64 hexadecimal digits.
    """
    if anchor is not None:
        anchor = anchor.strip().lower()
        if len(anchor) != 64 or any(c not in "0123456789abcdef" for c in anchor):
            raise ValueError("an anchor is a SHA-256 hash: 64 hexadecimal digits")
    start = time.perf_counter()
    head = session.get(AuditHead, 1)
    result = check_rows(_rows(session, chunk), anchor)
    if result.ok and head is None and result.rows:
        result = replace(
            result,
            ok=False,
            reason=Break.HEAD,
            message="the head record (table audit_head) was deleted",
        )
    elif result.ok and head is not None:
        if head.last_id > result.head_id:
            result = replace(
                result,
                ok=False,
                broken_id=result.head_id + 1,
                reason=Break.TAIL,
                message=f"the chain ends at row {result.head_id} but row {head.last_id} was "
                "written: rows were removed from the end",
            )
        elif head.last_id != result.head_id or head.last_hash != result.head_hash:
            result = replace(
                result,
                ok=False,
                broken_id=min(head.last_id + 1, result.head_id),
                reason=Break.HEAD,
                message="the head record does not match the last row "
                f"(it names row {head.last_id}; the chain ends at row {result.head_id})",
            )
    return replace(result, seconds=time.perf_counter() - start)
