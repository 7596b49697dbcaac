"""Database access: engines, and read / write sessions that own their transaction.

SQLite runs in WAL mode so readers never block the writer. Write transactions start with
``BEGIN IMMEDIATE`` so concurrent writers queue on the lock (busy timeout) instead of
failing when they upgrade a read lock; read transactions use a plain ``BEGIN``. Other
backends (PostgreSQL) use one pooled engine for both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_engine(url: str, *, begin: str, pool_size: int, max_overflow: int) -> Engine:
    # connections are cheap: size the pool like a server's, so requests waiting for the
    # write lock do not also exhaust the pool (SQLAlchemy's default is 5 + 10)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=pool_size,
        max_overflow=max_overflow,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 (the ``[postgres]`` extra), not SQLAlchemy's
    default psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


class Database:
    """Engines and session factories for one database URL.

    ``pool_size`` connections stay open to a database server, plus up to ``max_overflow``
    more under load (a request beyond that waits for a free one); the same holds for
    each of SQLite's two engines (writes, reads).
    """

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 20) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            sizes = {"pool_size": pool_size, "max_overflow": max_overflow}
            self.engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE", **sizes)
            self._read_engine = _sqlite_engine(url, begin="BEGIN", **sizes)
        else:
            self.engine = create_engine(
                _with_driver(url),
                pool_pre_ping=True,
                pool_size=pool_size,
                max_overflow=max_overflow,
            )
            self._read_engine = self.engine
        self._write_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self._write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; nothing it does is committed. Objects loaded in it stay
        readable after the block (the session is closed, not rolled back)."""
        with self._read_sessions() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        if self._read_engine is not self.engine:
            self._read_engine.dispose()
