"""Start a throw-away PostgreSQL 15 on a free 127.0.0.1 port (a context manager).

The cluster lives in a temporary folder owned by the ``postgres`` system user (PostgreSQL
refuses to run as root, so ``initdb`` and ``pg_ctl`` run through ``runuser`` when this
script is root). ``fsync`` stays on (the server default) unless ``fsync=False`` is
passed: turning it off is for tests only, never for figures meant to describe a real
installation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from common import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run ``cmd`` as the postgres user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


class PostgresServer:
    """A fresh PostgreSQL 15 cluster with one database, ``medlabel``; trust login for
    user ``postgres`` on 127.0.0.1 only. ``url`` is the SQLAlchemy URL (psycopg 3)."""

    def __init__(self, *, fsync: bool = True, max_connections: int = 200) -> None:
        if not (PG_BIN / "initdb").exists():
            raise SystemExit(
                "PostgreSQL 15 is not installed: apt-get install -y postgresql (as root)"
            )
        self.fsync = fsync
        self.max_connections = max_connections
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="medlabel-pg-"))
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.log = self.dir / "postgres.log"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/medlabel"
        self.started = False

    def _run(self, cmd: list[str]) -> None:
        out = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {(out.stderr or out.stdout)[-1500:]}")

    def __enter__(self) -> PostgresServer:
        self.data.mkdir()
        self.sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            for p in (self.data, self.sock):
                shutil.chown(p, "postgres", "postgres")
        # --no-sync only skips syncing initdb's own files; the server keeps fsync on
        self._run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sock} "
            f"-c max_connections={self.max_connections} -c fsync={'on' if self.fsync else 'off'}"
        )
        self._run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-o",
                opts,
                "start",
            ]
        )
        self.started = True
        self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=self.port, user="postgres", dbname="postgres"
                ) as conn:
                    conn.autocommit = True
                    conn.execute("CREATE DATABASE medlabel")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    @property
    def pid(self) -> int:
        """The postmaster's process id (its children are the backends)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def settings(self) -> dict[str, str]:
        """``fsync``, ``synchronous_commit`` and the server version, as the server reports."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="medlabel"
        ) as conn:
            return {
                name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in ("server_version", "fsync", "synchronous_commit", "max_connections")
            }

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its folder."""
        if self.started:
            subprocess.run(
                _as_postgres(
                    [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
                ),
                capture_output=True,
                check=False,
            )
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)
