"""Alembic migrations build exactly the schema the models declare.

These use SQLite files on purpose in every run (the embedded default, its batch
migrations and WAL mode); tests/storage/test_postgres.py does the same on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from medlabel.storage.db.engine import Database
from medlabel.storage.db.migrate import current_revision, head_revision, upgrade
from medlabel.storage.db.models import Base


def test_upgrade_matches_models(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    assert current_revision(db.engine) is None
    upgrade(db.engine)
    assert current_revision(db.engine) == head_revision()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    upgrade(db.engine)  # idempotent
    assert set(inspect(db.engine).get_table_names()) >= {"users", "images", "revisions"}


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with db.read() as s:
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_any_sqlalchemy_url_is_accepted(tmp_path: Path, monkeypatch: object) -> None:
    from medlabel.core.settings import Settings
    from medlabel.services.context import open_context

    url = f"sqlite:///{tmp_path / 'elsewhere' / 'x.db'}"
    (tmp_path / "elsewhere").mkdir()
    ctx = open_context(Settings(home=tmp_path / "home", database_url=url))
    try:
        assert ctx.db.url == url and (tmp_path / "elsewhere" / "x.db").exists()
    finally:
        ctx.close()
