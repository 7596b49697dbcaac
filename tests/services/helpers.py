"""Helpers for service tests: snapshots of what is stored."""

from __future__ import annotations

from sqlalchemy import func, select

from medlabel.services.context import Context
from medlabel.storage.db.models import (
    Annotation,
    Image,
    ImportRecord,
    Instance,
    Revision,
    Series,
    Study,
)

TABLES = (Study, Series, Image, Instance, ImportRecord, Annotation, Revision)


def stored(ctx: Context) -> dict[str, int]:
    """Row counts of the data tables and the number of blobs."""
    with ctx.db.read() as s:
        out = {t.__tablename__: s.scalar(select(func.count()).select_from(t)) or 0 for t in TABLES}
    out["blobs"] = sum(1 for _ in ctx.blobs.iter_digests())
    return out
