"""A throw-away PostgreSQL 15 cluster for the tests, and a fresh database per test.

Usage::

    from tests.support.postgres import postgres, postgres_database  # the fixtures

    def test_x(postgres_database: str) -> None:
        db = Database(postgres_database)       # migrated to head, empty, only this test's

One cluster runs per test session (started on first use): ``initdb`` into a temporary
directory, ``pg_ctl`` listening on a free port of 127.0.0.1 (socket in the same directory,
``fsync=off``), stopped and deleted at the end of the session. A template database is
migrated to the newest schema once; each test gets ``CREATE DATABASE ... TEMPLATE`` (a
file copy, milliseconds) and the database is dropped after the test. When the PostgreSQL
server programs are absent the tests are skipped locally and fail under ``CI=true``
(``scripts/test.sh`` installs them).

``MEDLABEL_TEST_DB=postgresql`` runs the whole suite on such databases (see
``tests/conftest.py``); the default is SQLite.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.require import free_port, missing

BINDIR = Path(os.environ.get("MEDLABEL_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
TEMPLATE = "medlabel_template"
#: the value of MEDLABEL_TEST_DB that runs the whole suite on PostgreSQL
TEST_DB_VAR = "MEDLABEL_TEST_DB"


def suite_on_postgres() -> bool:
    """Whether ``MEDLABEL_TEST_DB`` asks for PostgreSQL (default: SQLite)."""
    value = os.environ.get(TEST_DB_VAR, "sqlite").strip().lower()
    if value not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"{TEST_DB_VAR} must be sqlite or postgresql, not {value!r}")
    return value == "postgresql"


class PostgresCluster:
    """A PostgreSQL server owning ``workdir`` (data, socket and log live inside it).

    Attributes
    ----------
    port : int
        TCP port on 127.0.0.1.
    user : str
        The superuser (trust authentication; no password).
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.socket_dir = workdir / "sock"
        self.log = workdir / "server.log"
        self.port = free_port()
        self.user = "postgres"
        self._names = itertools.count(1)

    def url(self, dbname: str) -> str:
        """SQLAlchemy URL of a database of this cluster (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, program: str, *args: str) -> None:
        command = [str(BINDIR / program), *args]
        if os.geteuid() == 0:  # the server refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {done.stderr.strip()}\n{log[-2000:]}")

    def start(self) -> None:
        """initdb and start the server; returns when it accepts connections."""
        self.socket_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
            "--no-locale", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=400"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", options, "start")  # fmt: skip

    def stop(self) -> None:
        """Stop the server at once (the data is thrown away)."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def execute(self, sql: str) -> None:
        """Run one statement in the ``postgres`` database, outside a transaction."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.encode())  # test-owned identifiers only

    def create_database(self, template: str | None = None) -> str:
        """A new, uniquely named database (a copy of ``template`` when given); its name."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, closing connections a test left open."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def start_postgres(workdir: Path | None = None) -> Iterator[PostgresCluster]:
    """A running cluster in ``workdir`` (default: a new temporary directory, deleted after)."""
    own = workdir is None
    root = Path(tempfile.mkdtemp(prefix="medlabel-pg-")) if workdir is None else workdir
    cluster = PostgresCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if own:
            shutil.rmtree(root, ignore_errors=True)


def migrate_template(cluster: PostgresCluster) -> None:
    """Create the template database and bring it to the newest schema."""
    from medlabel.storage.db.engine import Database
    from medlabel.storage.db.migrate import upgrade

    cluster.execute(f'CREATE DATABASE "{TEMPLATE}"')
    db = Database(cluster.url(TEMPLATE))
    try:
        upgrade(db.engine)
    finally:
        db.dispose()  # CREATE DATABASE ... TEMPLATE needs it without connections


def _require_binaries() -> None:
    if not (BINDIR / "initdb").exists():
        missing("PostgreSQL", f"{BINDIR}/initdb (Debian: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("PostgreSQL", "the psycopg package (pip install -e .[postgres])")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The session's cluster, with the template database migrated to head."""
    _require_binaries()
    with start_postgres() as cluster:
        migrate_template(cluster)
        yield cluster


@pytest.fixture
def new_postgres_database(postgres: PostgresCluster) -> Iterator[Any]:
    """Factory: each call returns the URL of another fresh database migrated to head."""
    names: list[str] = []

    def make() -> str:
        names.append(postgres.create_database(TEMPLATE))
        return postgres.url(names[-1])

    yield make
    for name in names:
        postgres.drop_database(name)


@pytest.fixture
def postgres_database(new_postgres_database: Any) -> str:
    """URL of a fresh database migrated to head, dropped after the test."""
    return str(new_postgres_database())
