"""``medlabel pacs``: add a connection, search, pull and push against a real Orthanc;
bad input ends with a one-line error, never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from medlabel.annotation.content import AnnotationContent
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import LabelSpec
from medlabel.cli.main import app
from medlabel.core.settings import Settings
from medlabel.services.annotations import save_annotation
from medlabel.services.context import open_context
from medlabel.services.projects import add_labels, create_project
from medlabel.services.users import create_user, principal_of
from medlabel.storage.db.models import Image
from tests.conftest import PASSWORD
from tests.support.orthanc import Orthanc
from tests.support.pacs_data import ct_study, load
from tests.support.require import free_port

pytestmark = pytest.mark.services
runner = CliRunner()


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--home", str(home)], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_pacs_commands(tmp_path: Path, orthanc: Orthanc) -> None:
    ct = ct_study(load(orthanc))
    home = tmp_path / "h"
    ctx = open_context(Settings(home=home, preload_engines=[]))
    owner = principal_of(create_user(ctx, "owner", PASSWORD, "admin"))
    project = create_project(ctx, owner, "Study")
    add_labels(ctx, owner, project.id, [LabelSpec(name="organ", kind=LabelKind.MASK)])
    ctx.close()
    p = ["--project", "Study"]

    code, out, err = run(home, "pacs", "add", *p, "--name", "o", "--url", orthanc.dicomweb_url)
    assert code == 0, err
    dead = f"http://127.0.0.1:{free_port()}/dicom-web"
    code, _, err = run(home, "pacs", "add", *p, "--name", "dead", "--url", dead)
    assert code == 1 and "cannot reach" in err
    code, _, err = run(home, "pacs", "add", *p, "--name", "x", "--url", "nonsense")
    assert code == 1 and "not a DICOMweb URL" in err
    code, _, err = run(
        home, "pacs", "add", *p, "--name", "b", "--url", dead, "--auth", "bearer",
        "--secret-env", "NO_SUCH_VARIABLE_HERE",
    )  # fmt: skip
    assert code != 0 and "NO_SUCH_VARIABLE_HERE" in err
    code, out, _ = run(home, "pacs", "list", *p)
    assert code == 0 and " o " in out and "dead" not in out

    code, out, err = run(home, "pacs", "search", *p, "--pacs", "o", "--patient-id", ct.patient_id)
    assert code == 0, err
    assert ct.study_uid in out
    code, _, err = run(home, "pacs", "search", *p, "--pacs", "o", "--date-from", "yesterday")
    assert code != 0 and "--date-from" in err

    code, out, err = run(home, "pacs", "pull", ct.study_uid, *p, "--pacs", "o")
    assert code == 0, err
    assert "3 image(s) from 7 instance(s), 0 duplicate(s)" in out
    code, _, err = run(home, "pacs", "pull", "1.2.826.0.1.3680043.9.5", *p, "--pacs", "o")
    assert code == 1 and "has no study" in err

    ctx = open_context(Settings(home=home, preload_engines=[]))
    with ctx.db.read() as s:
        image = next(i for i in s.scalars(select(Image)) if i.shape[0] == 5)
    mask = np.zeros(image.shape, np.uint8)
    mask[1:3, 2:8, 2:8] = 1
    view = save_annotation(ctx, owner, image.id, content=AnnotationContent(), mask=mask)
    ctx.close()
    ann = str(view.annotation.id)
    code, out, err = run(home, "pacs", "push", ann, *p, "--pacs", "o", "--kind", "sr")
    assert code == 0, err
    assert out.startswith("stored SR ")
    code, _, err = run(home, "pacs", "push", ann, *p, "--pacs", "o", "--kind", "pdf")
    assert code == 1 and "seg or sr" in err
    code, _, err = run(home, "pacs", "push", ann, *p, "--pacs", "nope")
    assert code == 1 and "no PACS connection 'nope'" in err
    code, _, _ = run(home, "pacs", "remove", *p, "--pacs", "o")
    assert code == 0
