"""``medlabel backup`` / ``restore`` / ``migrate-db`` from the command line: clear
messages, never a traceback, nothing written on bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medlabel.cli.main import app
from medlabel.core.settings import Settings
from medlabel.services.context import open_context
from medlabel.storage.db.engine import Database
from tests.services.test_backup import dump, populate

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.stderr
    return result.exit_code, result.stdout, result.stderr


def _populated(home: Path) -> Settings:
    settings = Settings(home=home, preload_engines=[])
    ctx = open_context(settings)
    try:
        populate(ctx)
    finally:
        ctx.close()
    return settings


def _target_args(new_database: Callable[[], str | None]) -> list[str]:
    url = new_database()
    return ["--database-url", url] if url else []


def test_backup_and_restore(tmp_path: Path, new_database: Callable[[], str | None]) -> None:
    source = _populated(tmp_path / "source")
    archive = tmp_path / "nightly.tar.gz"
    code, out, err = run("backup", "--out", str(archive), "--home", str(source.home))
    assert code == 0, err
    assert "backup" in out and "blobs" in out

    code, _, err = run("backup", "--out", str(archive), "--home", str(source.home))
    assert code == 1 and "already exists" in err

    code, out, err = run("restore", str(archive), "--check")
    assert code == 0, err
    assert "complete and intact" in out

    target_home = tmp_path / "restored"
    target = _target_args(new_database)
    code, out, err = run("restore", str(archive), "--home", str(target_home), *target)
    assert code == 0, err
    assert "row counts verified" in out
    url = target[1] if target else None
    restored = Settings(home=target_home, database_url=url)
    a, b = Database(source.resolved_database_url), Database(restored.resolved_database_url)
    try:
        assert dump(a) == dump(b)
    finally:
        a.dispose()
        b.dispose()

    code, _, err = run("restore", str(archive), "--home", str(target_home), *target)
    assert code == 1 and "not empty" in err


def test_damaged_archive_creates_nothing(tmp_path: Path) -> None:
    source = _populated(tmp_path / "source")
    archive = tmp_path / "b.tar"
    assert run("backup", "--out", str(archive), "--home", str(source.home))[0] == 0
    data = archive.read_bytes()
    target_home = tmp_path / "never"
    # cut in the middle; cut inside the manifest (the last member)
    for cut in (len(data) // 2, data.rindex(b'"format": "medlabel-backup"') + 10):
        archive.write_bytes(data[:cut])
        code, _, err = run("restore", str(archive), "--home", str(target_home))
        assert code == 1
        assert "error:" in err
        assert "truncated" in err or "incomplete" in err or "damaged" in err
        assert not target_home.exists()

    packed = tmp_path / "b.tar.gz"
    assert run("backup", "--out", str(packed), "--home", str(source.home))[0] == 0
    packed.write_bytes(packed.read_bytes()[:-3000])  # a compressed archive cut short
    code, _, err = run("restore", str(packed), "--check")
    assert code == 1 and "truncated" in err

    code, _, err = run("restore", str(tmp_path / "nope.tar"), "--home", str(target_home))
    assert code == 1 and "no backup file" in err


def test_migrate_db_bad_targets(tmp_path: Path) -> None:
    home = tmp_path / "h"
    code, _, err = run("migrate-db", "--to", "not a url", "--home", str(home))
    assert code == 1 and "not a database URL" in err
    code, _, err = run(
        "migrate-db", "--to", "postgresql://u:hunter2@127.0.0.1:1/x", "--home", str(home)
    )
    assert code == 1 and "cannot use the database" in err
    assert "hunter2" not in err  # the password is never echoed


@pytest.mark.services
def test_migrate_db_to_postgresql(tmp_path: Path, new_postgres_database: Callable[[], str]) -> None:
    source = _populated(tmp_path / "source")
    url = new_postgres_database()
    code, out, err = run("migrate-db", "--to", url, "--home", str(source.home))
    assert code == 0, err
    assert "row counts verified" in out and "MEDLABEL_DATABASE_URL=postgresql" in out
    a, b = Database(source.resolved_database_url), Database(url)
    try:
        assert dump(a) == dump(b)
    finally:
        a.dispose()
        b.dispose()
    code, _, err = run("migrate-db", "--to", url, "--home", str(source.home))
    assert code == 1 and "not empty" in err
