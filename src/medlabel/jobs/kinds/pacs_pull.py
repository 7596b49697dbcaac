"""``pacs_pull``: retrieve studies from a PACS connection (WADO-RS) and import them
through the upload pipeline (de-identified, duplicates recognised), one study at a time;
progress per study, cancellable between instances."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from medlabel.core.errors import NotFoundError
from medlabel.jobs.reporter import Reporter
from medlabel.jobs.spec import JobEnv, JobKind
from medlabel.services.context import Context
from medlabel.services.pacs import (
    MAX_PULL_STUDIES,
    PACS_ROLE,
    check_pull,
    check_study_uids,
    pull,
)
from medlabel.storage.db.models import PacsConnection


class PacsPullParams(BaseModel):
    """Which studies from which connection of the job's project."""

    connection_id: int = Field(description="A PACS connection of the project.")
    study_uids: list[str] = Field(
        min_length=1, max_length=MAX_PULL_STUDIES, description="StudyInstanceUIDs to pull."
    )

    @field_validator("study_uids")
    @classmethod
    def _uids(cls, value: list[str]) -> list[str]:
        from medlabel.core.errors import InvalidInputError

        try:
            return check_study_uids(value)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None


def _check(ctx: Context, project_id: int | None, params: PacsPullParams) -> None:
    with ctx.db.read() as s:
        row = s.get(PacsConnection, params.connection_id)
        if row is None or row.project_id != project_id:
            raise NotFoundError(
                f"PACS connection {params.connection_id} is not a connection of this project"
            )
    check_pull(ctx, None, params.connection_id, params.study_uids)


def _run(env: JobEnv, params: PacsPullParams, reporter: Reporter) -> dict[str, Any]:
    n = len(params.study_uids)
    reporter.log(
        f"pulling {n} stud{'y' if n == 1 else 'ies'} from connection {params.connection_id}"
    )
    reporter.progress(0, n, "retrieving")

    def progress(stage: str, done: int, total: int) -> None:
        reporter.progress(done, total, stage)
        reporter.check_cancelled()

    result = pull(
        env.ctx, env.principal(), params.connection_id, params.study_uids, progress=progress
    )
    c = result.counts
    reporter.log(
        f"imported {len(result.image_ids)} image(s) from {c.get('instances', 0)} instance(s); "
        f"{c.get('duplicates', 0)} duplicate(s), {c.get('rejected', 0)} rejected"
    )
    for p in result.problems[:100]:
        reporter.log(f"{p.get('file')}: {p.get('reason')}", "warning")
    return result.to_dict()


KIND = JobKind(
    name="pacs_pull",
    params=PacsPullParams,
    run=_run,
    check=_check,
    role=PACS_ROLE,
    resumable=True,  # studies already imported come back as duplicates
    title="Pull studies from a PACS (DICOMweb) into the project, de-identified",
)
