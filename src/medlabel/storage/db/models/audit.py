"""The audit log: an append-only, hash-chained record of who did what, when, from where.

Rows are written only by :mod:`medlabel.security.audit` (never through the ORM's
``session.add`` elsewhere): it assigns consecutive ids, chains each row's ``hash`` to the
previous row's, and keeps the single-row :class:`AuditHead` up to date under a lock so the
chain never forks. No column may hold a patient identifier.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column

from medlabel.storage.db.base import Base


def canonical_json(value: Any) -> str:
    """``value`` as compact JSON with sorted keys; the form the audit chain hashes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


class CanonicalJSON(TypeDecorator[dict[str, Any]]):
    """A JSON object stored as canonical text, so its stored bytes are what was hashed.

    Verifying the chain can then hash the stored text as it is, without parsing it.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> Any:
        return canonical_json(value if value is not None else {})

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, Any] | None:
        if value is None:
            return None
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {"value": loaded}


class AuditEvent(Base):
    """One audited event. ``id`` is consecutive (1, 2, 3 ...) and assigned on append."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    #: the acting user's id; no foreign key: users may be deleted, the chain must not change
    actor_id: Mapped[int | None] = mapped_column(default=None, index=True)
    #: the acting user's name at the time ("" when nobody is signed in)
    actor: Mapped[str] = mapped_column(String(64), default="")
    #: one of medlabel.security.audit.AuditAction
    action: Mapped[str] = mapped_column(String(40), index=True)
    target_type: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[str] = mapped_column(String(64), default="")
    project_id: Mapped[int | None] = mapped_column(default=None, index=True)
    #: the client's IP address, or "cli:<hostname>" for the command line
    client: Mapped[str] = mapped_column(String(100), default="")
    #: small facts: ids of our own rows, counts, formats, status codes; never patient data
    details: Mapped[dict[str, Any]] = mapped_column(CanonicalJSON(), default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's newest row (one row, ``id == 1``); appends lock it to stay serial."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
