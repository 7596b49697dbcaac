"""``medlabel audit verify|head|export`` with Typer's CliRunner."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from medlabel.cli.main import app
from medlabel.core.settings import Settings
from medlabel.services.context import open_context

runner = CliRunner()


def run(home: Path, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--home", str(home)], input=input)
    return result.exit_code, result.stdout, result.stderr


def _setup(home: Path) -> None:
    pw = "correct horse battery\n"
    assert run(home, "users", "create", "ann", "--password-stdin", input=pw)[0] == 0
    assert run(home, "projects", "create", "Liver")[0] == 0
    assert run(home, "labels", "add", "liver", "--project", "Liver", "--kind", "mask")[0] == 0
    assert run(home, "members", "add", "ann", "--project", "Liver")[0] == 0


def _sql(home: Path, stmt: str) -> None:
    ctx = open_context(Settings(home=home, preload_engines=[]))
    try:
        with ctx.db.engine.begin() as conn:
            conn.execute(text(stmt))
    finally:
        ctx.close()


def test_verify_ok_then_tampered(tmp_path: Path) -> None:
    home = tmp_path / "h"
    _setup(home)
    code, out, _ = run(home, "audit", "verify")
    assert code == 0, out
    assert "4 row(s) checked" in out and "head row 4" in out and " s;" in out
    code, out, _ = run(home, "audit", "head")
    head_id, head_hash = out.split()
    assert head_id == "4" and len(head_hash) == 64 and head_hash in run(home, "audit", "verify")[1]

    _sql(home, "UPDATE audit_events SET details = '{}' WHERE id = 3")
    code, _, err = run(home, "audit", "verify")
    assert code == 1 and "row 3" in err and "content changed" in err


def test_verify_names_missing_rows_and_uses_anchor(
    tmp_path: Path, new_database: Callable[[], str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "h"
    _setup(home)
    anchor = run(home, "audit", "head")[1].split()[1]
    _sql(home, "DELETE FROM audit_events WHERE id = 2")
    code, _, err = run(home, "audit", "verify")
    assert code == 1 and "row 2" in err and "row missing" in err

    home2 = tmp_path / "h2"
    if (url := new_database()) is not None:  # on PostgreSQL: a second home's own database
        monkeypatch.setenv("MEDLABEL_DATABASE_URL", url)
    _setup(home2)
    anchor = run(home2, "audit", "head")[1].split()[1]
    _sql(home2, "DELETE FROM audit_events WHERE id = 4")
    _sql(home2, "UPDATE audit_head SET last_id = 3, last_hash = "
         "(SELECT hash FROM audit_events WHERE id = 3)")  # fmt: skip
    assert run(home2, "audit", "verify")[0] == 0
    code, _, err = run(home2, "audit", "verify", "--anchor", anchor)
    assert code == 1 and "anchor" in err
    code, _, err = run(home2, "audit", "verify", "--anchor", "nonsense")
    assert code == 1 and "64 hexadecimal" in err and "Traceback" not in err


def test_events_from_the_cli_name_the_host_and_operator(tmp_path: Path) -> None:
    home = tmp_path / "h"
    _setup(home)
    out = tmp_path / "log.jsonl"
    code, stdout, err = run(home, "audit", "export", "--out", str(out))
    assert code == 0, err
    assert "exported 4 event(s)" in stdout and "head: row 4" in stdout
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["action"] for e in events] == [
        "user.create",
        "project.create",
        "label.create",
        "member.set",
    ]
    assert all(e["client"].startswith("cli:") and e["actor"].startswith("os:") for e in events)
    assert all(e["at"].endswith("Z") and len(e["hash"]) == 64 for e in events)
    assert events[1]["prev_hash"] == events[0]["hash"]
    # the export itself is recorded
    assert run(home, "audit", "verify")[1].count("5 row(s)") == 1


def test_export_csv_with_filters(tmp_path: Path) -> None:
    home = tmp_path / "h"
    _setup(home)
    out = tmp_path / "log.csv"
    code, _, err = run(
        home, "audit", "export", "--out", str(out), "--project", "Liver", "--since", "2000-01-01"
    )
    assert code == 0, err
    rows = list(csv.DictReader(out.open()))
    assert [r["action"] for r in rows] == ["project.create", "label.create", "member.set"]
    assert json.loads(rows[2]["details"]) == {"role": "annotator"}
    code, _, err = run(
        home, "audit", "export", "--out", str(tmp_path / "x.csv"), "--until", "1999-12-31"
    )
    assert code == 0 and list(csv.DictReader((tmp_path / "x.csv").open())) == []


def test_export_refuses_bad_input(tmp_path: Path) -> None:
    home = tmp_path / "h"
    _setup(home)
    code, _, err = run(home, "audit", "export", "--out", str(tmp_path / "log.txt"))
    assert code == 1 and ".jsonl or .csv" in err
    existing = tmp_path / "there.jsonl"
    existing.write_text("keep me")
    code, _, err = run(home, "audit", "export", "--out", str(existing))
    assert code == 1 and "exists" in err and existing.read_text() == "keep me"
    code, _, err = run(home, "audit", "export", "--out", str(tmp_path / "a.csv"), "--since", "x")
    assert code == 2 and "ISO 8601" in err
    code, _, err = run(
        home, "audit", "export", "--out", str(tmp_path / "b.csv"), "--project", "Nope"
    )
    assert code == 1 and "Nope" in err
    code, _, err = run(
        home, "audit", "export", "--out", str(tmp_path / "c.csv"), "--action", "bogus"
    )
    assert code == 1 and "unknown audit action" in err
