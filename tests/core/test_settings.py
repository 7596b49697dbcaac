"""Settings are validated on load."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from medlabel.core.errors import ConfigurationError
from medlabel.core.settings import Settings


def test_defaults_live_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDLABEL_DATABASE_URL", raising=False)  # set on a PostgreSQL run
    s = Settings(home=tmp_path)
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'medlabel.db'}"
    assert s.resolved_blob_dir == tmp_path / "blobs"
    assert not s.demo and s.allowed_origins == []


def test_wildcard_cors_with_cookies_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="exact origins"):
        Settings(home=tmp_path, allowed_origins=["*"])


def test_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLABEL_HOME", str(tmp_path))
    monkeypatch.setenv("MEDLABEL_PORT", "9001")
    s = Settings()
    assert s.home == tmp_path and s.port == 9001
    monkeypatch.setenv("MEDLABEL_PORT", "99999")
    with pytest.raises(ValidationError):
        Settings()
