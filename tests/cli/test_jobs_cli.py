"""``medlabel jobs``: run a job in the foreground, list, show, logs, cancel, retry."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from medlabel.annotation.content import AnnotationContent, Box
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.cli.main import app
from medlabel.core.settings import Settings
from medlabel.jobs import store
from medlabel.services.annotations import save_annotation
from medlabel.services.context import open_context
from medlabel.services.imports import import_paths
from medlabel.services.projects import add_labels, create_project
from medlabel.services.users import create_user, principal_of
from tests.conftest import PASSWORD, sample_file

runner = CliRunner()


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--home", str(home)])
    return result.exit_code, result.stdout, result.stderr


def _annotated_project(home: Path) -> int:
    ctx = open_context(Settings(home=home, preload_engines=[]))
    try:
        owner = principal_of(create_user(ctx, "owner", PASSWORD, "admin"))
        project = create_project(ctx, owner, "Study")
        add_labels(ctx, owner, project.id, [LabelSpec(name="finding", kind=LabelKind.BOX)])
        (image,) = import_paths(ctx, owner, project.id, [sample_file("CT_small.dcm")]).image_ids
        box = Box(label="finding", start=(-0.5, 10, 10), end=(0.5, 30, 40))
        save_annotation(ctx, owner, image, content=AnnotationContent(boxes=[box]))
        # a job queued for a server that is not running
        store.create(
            ctx.db, kind="export", params={"format": "csv"}, project_id=project.id, created_by=None
        )
        return project.id
    finally:
        ctx.close()


def test_jobs_commands(tmp_path: Path) -> None:
    home = tmp_path / "h"
    _annotated_project(home)
    code, out, err = run(home, "jobs", "kinds")
    assert code == 0 and "\nexport: " in "\n" + out and "format" in out and "evaluate: " in out

    code, out, err = run(
        home,
        "jobs",
        "run",
        "export",
        "-p",
        "Study",
        "--param",
        "format=csv",
        "--param",
        "which=latest",
    )
    assert code == 0, err
    assert "job 2: export — succeeded (attempt 1)" in out and '"exported": 1' in out

    code, out, _ = run(home, "jobs", "list", "--project", "Study")
    rows = out.splitlines()
    assert code == 0 and len(rows) == 2
    assert rows[0].split()[:3] == ["2", "export", "succeeded"]
    assert rows[1].split()[:3] == ["1", "export", "queued"]
    code, out, _ = run(home, "jobs", "list", "--state", "queued")
    assert code == 0 and len(out.splitlines()) == 1
    code, _, err = run(home, "jobs", "list", "--state", "paused")
    assert code == 1 and "no state 'paused'" in err

    code, out, _ = run(home, "jobs", "logs", "2")
    assert code == 0 and "exporting latest revisions as csv" in out and "succeeded" in out
    code, out, _ = run(home, "jobs", "logs", "2", "--follow")  # over: prints and ends
    assert code == 0 and out.strip().endswith("succeeded")
    code, out, _ = run(home, "jobs", "show", "2", "--follow")
    assert code == 0 and "result:" in out

    code, out, _ = run(home, "jobs", "cancel", "1")
    assert code == 0 and "job 1 cancelled" in out
    code, _, err = run(home, "jobs", "cancel", "1")
    assert code == 1 and "already cancelled" in err
    code, out, _ = run(home, "jobs", "retry", "1")
    assert code == 0 and "attempt 2" in out
    code, out, _ = run(home, "jobs", "show", "1")  # waits for a server: the CLI runs nothing
    assert code == 0 and "export — queued (attempt 2)" in out

    code, _, err = run(home, "jobs", "run", "export", "-p", "Study", "--param", "format=gif")
    assert code == 1 and "invalid parameters for job kind 'export': format" in err
    code, _, err = run(home, "jobs", "run", "export", "-p", "Study", "--params", "[1]")
    assert code == 2 and "JSON object" in err
    code, out, _ = run(home, "jobs", "list")
    assert len(out.splitlines()) == 2  # the refused runs stored nothing
    code, out, _ = run(home, "jobs", "run", "export", "-p", "Study", "--param", "format=nifti")
    assert code == 1 and "failed" in out and "error:    nothing in this project can be" in out
