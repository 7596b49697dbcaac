"""Copying every table's rows between databases: the one row-copy path shared by
``medlabel restore`` (rows read from an archive) and ``medlabel migrate-db`` (rows read
from another database).

Rows are read in one snapshot (:func:`snapshot`), written in foreign-key order inside one
transaction of the target (:class:`RowWriter`), with their original primary keys; foreign
keys that point "forward" (cycles such as ``annotations.head_revision_id`` ↔
``revisions.annotation_id``, and self references) are written as NULL first and filled
in once every table is in. PostgreSQL sequences are then moved past the largest key.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    Float,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Time,
    TypeDecorator,
    Uuid,
    bindparam,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from medlabel.core.errors import ConflictError, InvalidInputError
from medlabel.services.blobrefs import DIGEST_COLUMNS
from medlabel.storage.db.engine import Database
from medlabel.storage.db.models import Base

#: tables a freshly migrated database already has rows in (the audit chain's genesis
#: head); they still count as empty, and their seed rows are replaced by the copied ones
SEED_TABLES = frozenset({"audit_head"})
#: Alembic's own bookkeeping: the target gets it from its own migration
SKIPPED_TABLES = frozenset({"alembic_version"})
BATCH = 500
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


# ---------------------------------------------------------------------------- tables


def database_tables(conn: Connection) -> list[Table]:
    """The tables of the connected database, in foreign-key order (parents first).

    Tables medlabel's models know are taken from the models (their column types convert
    values exactly, e.g. UTC datetimes); others (another schema revision's, a plugin's)
    are reflected, with the models' column types where the models have the column.
    """
    inspector = inspect(conn)
    names = set(inspector.get_table_names()) - SKIPPED_TABLES
    known = Base.metadata.tables
    reflected = MetaData()
    tables = []
    for name in sorted(names):
        model = known.get(name)
        columns = {c["name"] for c in inspector.get_columns(name)}
        if model is not None and columns == set(model.columns.keys()):
            tables.append(model)
            continue
        # a table of another schema revision (an older backup's): its columns as they
        # are, with the models' types where the models have the column
        table = Table(name, reflected, autoload_with=conn)
        if model is not None:
            for col in table.columns:
                if col.name in model.columns:
                    col.type = model.columns[col.name].type
        tables.append(table)
    return order_tables(tables)


def _parents(table: Table) -> set[str]:
    return {fk.target_fullname.rsplit(".", 1)[0] for fk in table.foreign_keys}


def order_tables(tables: Sequence[Table]) -> list[Table]:
    """Parents before children; a cycle is broken at a foreign key marked ``use_alter``
    (else at the first table by name), its forward references deferred by the writer."""
    by_name = {t.name: t for t in tables}
    strong = {
        t.name: {
            fk.target_fullname.rsplit(".", 1)[0]
            for fk in t.foreign_keys
            if not fk.use_alter and not fk.constraint.use_alter  # type: ignore[union-attr]
        }
        & (by_name.keys() - {t.name})
        for t in tables
    }
    ordered: list[Table] = []
    placed: set[str] = set()
    while len(ordered) < len(tables):
        ready = sorted(n for n in by_name if n not in placed and strong[n] <= placed)
        if not ready:  # a cycle without use_alter: break it deterministically
            ready = [min(n for n in by_name if n not in placed)]
        for name in ready:
            ordered.append(by_name[name])
            placed.add(name)
    return ordered


def primary_key(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def digest_columns(table: Table) -> list[str]:
    """Columns of ``table`` that hold blob digests: those the garbage collector keeps
    (:data:`~medlabel.services.blobrefs.DIGEST_COLUMNS`) and, to be safe, any other
    string column named ``digest`` or ``*_digest``."""
    listed = {c.name for c in DIGEST_COLUMNS if c.table.name == table.name}
    named = {
        c.name
        for c in table.columns
        if (c.name == "digest" or c.name.endswith("_digest")) and isinstance(c.type, String)
    }
    return sorted(listed | named)


def row_digests(table: Table, columns: Sequence[str], row: Sequence[Any]) -> Iterator[str]:
    """The blob digests a row (values in ``columns`` order) refers to."""
    for name in digest_columns(table):
        if name in columns:
            value = row[columns.index(name)]
            if isinstance(value, str) and _DIGEST.match(value):
                yield value


# ---------------------------------------------------------------------------- snapshots


@contextmanager
def snapshot(db: Database) -> Iterator[Connection]:
    """A connection whose reads all see one consistent state of the database.

    SQLite (WAL mode): one read transaction is a snapshot from its first read on, and
    writers are not blocked. PostgreSQL: a READ ONLY, REPEATABLE READ transaction.
    """
    with db.read() as session:
        if db.is_sqlite:
            conn = session.connection()
        else:
            conn = session.connection(
                execution_options={
                    "isolation_level": "REPEATABLE READ",
                    "postgresql_readonly": True,
                }
            )
        # start the snapshot now (SQLite: at the first read of the database file)
        conn.execute(text("SELECT 1 FROM sqlite_master LIMIT 1" if db.is_sqlite else "SELECT 1"))
        yield conn


def read_rows(conn: Connection, table: Table) -> Iterator[tuple[Any, ...]]:
    """All rows of ``table`` in primary-key order, streamed."""
    stmt = select(*table.columns).order_by(*table.primary_key.columns)
    result = conn.execution_options(yield_per=1000).execute(stmt)
    for row in result:
        yield tuple(row)


def count_rows(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# ---------------------------------------------------------------------------- encoding


def encode_value(value: Any) -> Any:
    """A column value as JSON (datetimes as ISO 8601 in UTC, bytes as base64)."""
    if value is None or isinstance(value, bool | int | float | str | dict | list):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # naive values are UTC by convention (SQLite)
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return encode_value(value.value)
    raise TypeError(f"cannot store a {type(value).__name__} value in a backup")


def _base_type(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    return type_


def _decoder(type_: TypeEngine[Any]) -> Callable[[Any], Any] | None:
    base = _base_type(type_)
    if isinstance(base, DateTime):
        aware = bool(base.timezone)

        def as_datetime(v: str) -> dt.datetime:
            value = dt.datetime.fromisoformat(v)
            if value.tzinfo is not None and not aware:  # UTC, without the offset
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return value

        return as_datetime
    if isinstance(base, Date):
        return dt.date.fromisoformat
    if isinstance(base, Time):
        return dt.time.fromisoformat
    if isinstance(base, LargeBinary):
        return base64.b64decode
    if isinstance(base, Numeric) and not isinstance(base, Float) and base.asdecimal:
        return decimal.Decimal
    if isinstance(base, Uuid) and base.as_uuid:
        return uuid.UUID
    return None


def row_decoder(table: Table, columns: Sequence[str]) -> Callable[[Sequence[Any]], list[Any]]:
    """Turn encoded values (in ``columns`` order) back into the column types' values."""
    decoders = [_decoder(table.columns[name].type) for name in columns]

    def decode(values: Sequence[Any]) -> list[Any]:
        if len(values) != len(decoders):
            raise InvalidInputError(
                f"a row of table {table.name} has {len(values)} values, expected {len(decoders)}"
            )
        return [
            d(v) if d is not None and v is not None else v
            for d, v in zip(decoders, values, strict=True)
        ]

    return decode


# ---------------------------------------------------------------------------- writing


def check_empty(conn: Connection, tables: Iterable[Table], *, where: str) -> None:
    """Raise :class:`ConflictError` unless every table (seed tables aside) has no rows."""
    full = [
        f"{t.name} ({n} rows)"
        for t in tables
        if t.name not in SEED_TABLES and (n := count_rows(conn, t)) > 0
    ]
    if full:
        shown = ", ".join(full[:5]) + (" ..." if len(full) > 5 else "")
        raise ConflictError(
            f"{where} is not empty: {shown}. Restore or copy only into a new, empty "
            "database (for a home: a new --home folder); move the existing one aside first"
        )


@dataclass
class _Deferred:
    table: Table
    columns: list[str]
    #: (primary key values, deferred values) of rows with any deferred value set
    rows: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = field(default_factory=list)


class RowWriter:
    """Inserts the rows of one table after another, parents first, in one transaction of
    ``session``; :meth:`finish` fills in the deferred foreign keys, moves PostgreSQL
    sequences and returns the row count of every table, as the target now sees it."""

    def __init__(
        self, session: Session, tables: Sequence[Table], order: Sequence[str] | None = None
    ) -> None:
        self.conn = session.connection()
        self.tables = {t.name: t for t in tables}
        #: the order tables will be written in (default: ``tables``' own)
        names = list(order) if order is not None else [t.name for t in tables]
        self._position = {n: i for i, n in enumerate(names)}
        self._deferred: list[_Deferred] = []
        self._done: set[str] = set()
        for name in SEED_TABLES & self.tables.keys():
            self.conn.execute(self.tables[name].delete())

    def table(self, name: str) -> Table:
        try:
            return self.tables[name]
        except KeyError:
            raise InvalidInputError(
                f"the source has a table {name!r} that this version of medlabel does not know"
            ) from None

    def _forward_columns(self, table: Table, columns: Sequence[str]) -> list[str]:
        """Nullable foreign-key columns referring to a table not written yet (or to the
        same table): written as NULL first, filled in by :meth:`finish`."""
        here = self._position.get(table.name, len(self._position))
        out = []
        for fk in table.foreign_keys:
            target = fk.target_fullname.rsplit(".", 1)[0]
            col = fk.parent
            if (
                col.name in columns
                and col.nullable
                and self._position.get(target, len(self._position)) >= here
                and col.name not in out
            ):
                out.append(col.name)
        return out

    def write(self, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Insert ``rows`` (values in ``columns`` order) into table ``name``."""
        table = self.table(name)
        if name in self._done:
            raise InvalidInputError(f"table {name} appears twice in the source")
        unknown = [c for c in columns if c not in table.columns]
        if unknown:
            raise InvalidInputError(
                f"table {name} of the source has columns {unknown} that this version of "
                "medlabel does not know"
            )
        self._done.add(name)
        forward = self._forward_columns(table, columns)
        deferred = _Deferred(table, forward)
        pk_at = [columns.index(c) for c in primary_key(table)]
        fwd_at = [columns.index(c) for c in forward]
        insert = table.insert()
        batch: list[dict[str, Any]] = []
        count = 0
        for row in rows:
            values = dict(zip(columns, row, strict=True))
            if forward:
                later = tuple(row[i] for i in fwd_at)
                if any(v is not None for v in later):
                    deferred.rows.append((tuple(row[i] for i in pk_at), later))
                    for c in forward:
                        values[c] = None
            batch.append(values)
            count += 1
            if len(batch) >= BATCH:
                self.conn.execute(insert, batch)
                batch = []
        if batch:
            self.conn.execute(insert, batch)
        if deferred.rows:
            self._deferred.append(deferred)
        return count

    def finish(self) -> dict[str, int]:
        for d in self._deferred:
            pk = primary_key(d.table)
            stmt = (
                d.table.update()
                .where(*(d.table.columns[c] == bindparam(f"pk_{c}") for c in pk))
                .values({c: bindparam(f"v_{c}") for c in d.columns})
            )
            params = [
                {**{f"pk_{c}": v for c, v in zip(pk, key, strict=True)},
                 **{f"v_{c}": v for c, v in zip(d.columns, vals, strict=True)}}
                for key, vals in d.rows
            ]  # fmt: skip
            for i in range(0, len(params), BATCH):
                self.conn.execute(stmt, params[i : i + BATCH])
        if self.conn.dialect.name == "postgresql":
            reset_sequences(self.conn, self.tables.values())
        return {name: count_rows(self.conn, t) for name, t in self.tables.items()}


def reset_sequences(conn: Connection, tables: Iterable[Table]) -> None:
    """Move each serial primary key's sequence past the largest key (PostgreSQL), so new
    rows do not collide with the copied ones."""
    quote = conn.dialect.identifier_preparer.quote
    for table in tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1:
            continue
        seq = conn.execute(
            text("SELECT pg_get_serial_sequence(:t, :c)"),
            {"t": quote(table.name), "c": pk[0].name},
        ).scalar()
        if seq is None:
            continue
        conn.execute(
            text(
                f"SELECT setval(:seq, COALESCE((SELECT MAX({quote(pk[0].name)}) "
                f"FROM {quote(table.name)}), 0) + 1, false)"
            ),
            {"seq": seq},
        )
