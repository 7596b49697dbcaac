"""``medlabel migrate-db``: copy every row of one database into another, empty one (the
way from the SQLite default to PostgreSQL), with the row-copy code of ``restore``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from medlabel.core.errors import InvalidInputError
from medlabel.services.backup.rows import (
    RowWriter,
    check_empty,
    database_tables,
    read_rows,
    snapshot,
)
from medlabel.storage.db.engine import Database
from medlabel.storage.db.migrate import current_revision

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CopyReport:
    #: rows copied, by table (each verified against the target's count)
    tables: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def display_url(url: str) -> str:
    """A database URL with its password hidden (for messages and logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL: say so without echoing it
        return "<unparsable URL>"


def copy_database(
    source: Database, target: Database, *, progress: Progress | None = None
) -> CopyReport:
    """Copy all rows of ``source`` (read in one snapshot) into ``target``.

    Both databases must be at the same schema revision (migrate the target first), and
    the target must be empty. The copy is one transaction of the target: it is complete
    or absent. Row counts are compared table by table before it commits.

    Raises
    ------
    InvalidInputError
        Same database, different schema revisions, or rows the target refuses.
    ConflictError
        The target already holds data.
    """
    if make_url(source.url) == make_url(target.url):
        raise InvalidInputError("the source and the target are the same database")
    want = current_revision(target.engine)
    expected: dict[str, int] = {}
    try:
        with snapshot(source) as src:
            have = MigrationContext.configure(src).get_current_revision()
            if have != want:
                raise InvalidInputError(
                    f"the source database is at schema revision {have}, the target at {want}; "
                    "upgrade both with this medlabel first"
                )
            tables = database_tables(src)
            with target.write() as session:
                conn = session.connection()
                check_empty(conn, database_tables(conn), where="the target database")
                writer = RowWriter(session, database_tables(conn), [t.name for t in tables])
                for i, table in enumerate(tables):
                    if progress is not None:
                        progress("copying tables", i, len(tables))
                    columns = [c.name for c in table.columns]
                    expected[table.name] = writer.write(table.name, columns, read_rows(src, table))
                counts = writer.finish()
                wrong = {n: (c, counts.get(n)) for n, c in expected.items() if counts.get(n) != c}
                if wrong:
                    raise InvalidInputError(f"row counts differ after the copy: {wrong}")
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        raise InvalidInputError(
            f"the copy failed and was rolled back: {str(reason).splitlines()[0]}"
        ) from None
    log.info(
        "copied %d rows from %s to %s",
        sum(expected.values()),
        display_url(source.url),
        display_url(target.url),
    )
    return CopyReport(expected)
