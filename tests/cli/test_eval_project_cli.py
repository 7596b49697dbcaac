"""``medlabel eval --project``: a reader of a project against its reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from medlabel.cli.main import app
from medlabel.core.settings import Settings
from medlabel.services import annotations as ann_svc
from medlabel.services.context import Context
from medlabel.services.evaluations import list_evaluations
from medlabel.services.images import get_image
from tests.services.reader_study import make_study, read


def test_reader_against_the_reference(ctx: Context, settings: Settings, tmp_path: Path) -> None:
    study = make_study(ctx, readers_per_image=2, blinded=True)
    image = study.image_ids[0]
    shape = list(get_image(ctx, study.admin, image).shape)
    a = np.zeros(shape, np.uint8)
    a[0, 4:20, 4:20] = 1
    b = np.zeros(shape, np.uint8)
    b[0, 6:20, 4:20] = 1
    read(ctx, study.ann, image, mask=a)
    bob = read(ctx, study.bob, image, mask=b)
    ann_svc.transition(ctx, study.rita, bob.annotation.id, "approve", bob.annotation.version)

    runner = CliRunner()
    home = ["--home", str(settings.home)]
    out = tmp_path / "report"
    r = runner.invoke(
        app, ["eval", "--project", "Study", "--reader", "ann", "--out", str(out), *home]
    )
    assert r.exit_code == 0, r.output
    assert "mean Dice" in r.output
    data = json.loads((out / "report.json").read_text())
    (row,) = data["cases"]
    assert abs(row["metrics"]["dice"] - 2 * 14 * 16 / (16 * 16 + 14 * 16)) < 1e-9
    assert (out / "report.html").exists() and (out / "cases.csv").exists()
    (stored,) = list_evaluations(ctx, study.rita, study.project_id)
    assert stored.subject["name"] == "ann"

    bad = runner.invoke(app, ["eval", "--project", "Study", "--out", str(out), *home])
    assert bad.exit_code == 1 and "exactly one of --reader or --engine" in bad.output
    bad = runner.invoke(
        app,
        ["eval", "--project", "Study", "--reader", "nobody", "--out", str(tmp_path / "x"), *home],
    )
    assert bad.exit_code == 1 and "no user named 'nobody'" in bad.output
    bad = runner.invoke(
        app, ["eval", "--project", "Study", "--reader", "bob", "--out", str(tmp_path / "y"), *home]
    )
    assert bad.exit_code == 1 and "nothing to evaluate" in bad.output
