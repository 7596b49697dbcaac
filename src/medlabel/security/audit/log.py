"""Appending events to the audit log, inside the caller's transaction.

Services call :func:`record` with the session of the change they make, so the event
commits or rolls back with it. Where the request came from (client address, or
``cli:<host>``) is taken from :func:`origin`, set once per request by the server's
middleware and once per command by the CLI.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medlabel.core.ids import utcnow
from medlabel.security.audit.actions import AuditAction
from medlabel.security.audit.chain import GENESIS, event_hash
from medlabel.storage.db.models.audit import AuditEvent, AuditHead, canonical_json

log = logging.getLogger(__name__)

#: longest canonical details text accepted (details are small facts, not payloads)
MAX_DETAILS_CHARS = 4000


class Actor(Protocol):
    """Who acts: anything with a user id and username (a ``Principal``)."""

    @property
    def id(self) -> int: ...

    @property
    def username(self) -> str: ...


@dataclass(frozen=True)
class Origin:
    """Where actions come from: the client address, and who acts when no user is signed
    in (the operator of the command line)."""

    client: str = ""
    operator: str = ""


_ORIGIN: contextvars.ContextVar[Origin] = contextvars.ContextVar("medlabel_audit_origin")


def origin() -> Origin:
    """The origin of the current request or command (empty if none was set)."""
    return _ORIGIN.get(Origin())


def set_origin(value: Origin) -> contextvars.Token[Origin]:
    """Make ``value`` the origin of what the current context does."""
    return _ORIGIN.set(value)


@contextlib.contextmanager
def origin_scope(value: Origin) -> Iterator[None]:
    """Run a block with ``value`` as the origin."""
    token = _ORIGIN.set(value)
    try:
        yield
    finally:
        _ORIGIN.reset(token)


_CONTROL = dict.fromkeys([*range(0x20), 0x7F], "?")


def _text(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, control characters (among them the hashed
    text's field separator) replaced by ``?``."""
    return value[:limit].translate(_CONTROL)


def _check_details(value: Any, depth: int = 0) -> None:
    if depth > 4:
        raise ValueError("audit details nest too deeply")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("audit details may not hold NaN or infinity")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_details(item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("audit detail keys must be strings")
            _check_details(item, depth + 1)
        return
    raise ValueError(f"audit details may hold JSON values only, not {type(value).__name__}")


def changed(**fields: object) -> dict[str, Any]:
    """Details naming the fields a change set (those not None), without their values:
    ``changed(role="admin", password=None)`` is ``{"changed": ["role"]}``."""
    return {"changed": sorted(k for k, v in fields.items() if v is not None)}


def _lock_head(session: Session) -> AuditHead:
    """The chain's head row, locked until the transaction ends (``SELECT ... FOR UPDATE``
    on PostgreSQL; SQLite's write transaction already holds the database lock)."""
    head = session.scalar(
        select(AuditHead)
        .where(AuditHead.id == 1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if head is None:  # a database built without the migration's seed row
        last = session.scalar(select(func.max(AuditEvent.id)))
        last_hash = (
            session.scalar(select(AuditEvent.hash).where(AuditEvent.id == last)) if last else None
        )
        head = AuditHead(id=1, last_id=last or 0, last_hash=last_hash or GENESIS)
        session.add(head)
        session.flush()
    return head


def record(
    session: Session,
    actor: Actor | None,
    action: AuditAction | str,
    *,
    target_type: str = "",
    target_id: int | str | None = None,
    project_id: int | None = None,
    details: Mapping[str, Any] | None = None,
    client: str | None = None,
) -> AuditEvent:
    """Append one event to the audit log in ``session``'s (write) transaction.

    Parameters
    ----------
    session
        The write session of the change being recorded; the event commits with it.
    actor
        The signed-in user, or None for the command line's operator (or nobody).
    action
        What happened (:class:`AuditAction` or its value).
    target_type, target_id
        What it happened to, e.g. ``"image"``, ``12``.
    project_id
        The project it belongs to, if any.
    details
        Small JSON facts: ids of our own rows, counts, formats, status codes. Never
        patient identifiers, file names from uploads or DICOM values.
    client
        Override the origin's client address.

    Raises
    ------
    ValueError
        Unknown action, or details that are not small plain JSON.
    """
    action = AuditAction(action)
    body = dict(details or {})
    _check_details(body)
    details_text = canonical_json(body)
    if len(details_text) > MAX_DETAILS_CHARS:
        raise ValueError(f"audit details are limited to {MAX_DETAILS_CHARS} characters")
    where = origin()
    head = _lock_head(session)
    event = AuditEvent(
        id=head.last_id + 1,
        at=utcnow(),
        actor_id=actor.id if actor is not None else None,
        actor=_text(actor.username if actor is not None else where.operator, 64),
        action=action.value,
        target_type=_text(target_type, 32),
        target_id="" if target_id is None else _text(str(target_id), 64),
        project_id=project_id,
        client=_text(client if client is not None else where.client, 100),
        details=body,
        prev_hash=head.last_hash,
    )
    event.hash = event_hash(
        id=event.id,
        at=event.at,
        actor_id=event.actor_id,
        actor=event.actor,
        action=event.action,
        target_type=event.target_type,
        target_id=event.target_id,
        project_id=event.project_id,
        client=event.client,
        details=details_text,
        prev_hash=event.prev_hash,
    )
    session.add(event)
    head.last_id = event.id
    head.last_hash = event.hash
    session.flush()
    return event
