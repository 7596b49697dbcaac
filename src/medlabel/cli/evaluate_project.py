"""``medlabel eval --project``: a reader or an engine of a project against its reference.

The same report as the file-based ``medlabel eval``, fed from the database; it is also
stored in the project (listed in the UI's Evaluations tab)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from medlabel.cli.common import console, opened, reporting
from medlabel.core.errors import InvalidInputError, NotFoundError


def evaluate_project(
    home: Path | None,
    project: str,
    *,
    reader: str | None,
    engine: str | None,
    which: str,
    tolerance_mm: float,
    seed: int,
    out: Path,
) -> None:
    """Run and store an evaluation, then write its report files to ``out``."""
    from sqlalchemy import select

    from medlabel.quality.report import Report
    from medlabel.services.evaluations import EvaluationRequest, run_evaluation
    from medlabel.services.projects import find_project
    from medlabel.storage.db.models import User

    with reporting():
        if (reader is None) == (engine is None):
            raise InvalidInputError("with --project, give exactly one of --reader or --engine")
        if which not in ("latest", "approved"):
            raise InvalidInputError(f"--which is latest or approved; got {which!r}")
        if out.exists() and not out.is_dir():
            raise InvalidInputError(f"--out {out} is a file; give a folder")
    with opened(home) as ctx:
        p = find_project(ctx, project)
        user_id = None
        if reader is not None:
            with ctx.db.read() as s:
                user_id = s.scalar(select(User.id).where(User.username == reader))
            if user_id is None:
                raise NotFoundError(f"no user named {reader!r}")
        request = EvaluationRequest(
            subject="reader" if reader else "engine",
            user_id=user_id,
            engine_name=engine,
            which=which,
            tolerance_mm=tolerance_mm,
            seed=seed,
        )
        row = run_evaluation(ctx, None, p.id, request)
        document = json.loads(gzip.decompress(ctx.blobs.read_bytes(row.report_digest)))
    written = Report.from_json(document).write(out)
    console.print(
        f"evaluation {row.id} of {p.name!r}: {row.cases} case(s), {row.skipped} skipped; "
        f"report: {written['html']}"
    )
    for label, s in row.summary.items():
        dice = (s.get("dice") or {}).get("mean")
        if dice is not None:
            console.print(f"  label {label} ({s.get('name')}): mean Dice {dice:.3f}")
