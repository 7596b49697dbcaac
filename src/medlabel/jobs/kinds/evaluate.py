"""``evaluate``: a reader or an engine against the project's reference; the report is
stored (``/api/evaluations/{evaluation_id}/report.html``)."""

from __future__ import annotations

from typing import Any

from medlabel.jobs.reporter import Reporter
from medlabel.jobs.spec import JobEnv, JobKind
from medlabel.services.context import Context
from medlabel.services.evaluations import EvaluationRequest, check_evaluable, run_evaluation


def _check(ctx: Context, project_id: int | None, params: EvaluationRequest) -> None:
    assert project_id is not None
    check_evaluable(ctx, project_id, params)


def _run(env: JobEnv, params: EvaluationRequest, reporter: Reporter) -> dict[str, Any]:
    reporter.log(f"evaluating {params.subject} against the reference")

    def progress(done: int, total: int) -> None:
        reporter.stage_progress("cases", done, total)

    row = run_evaluation(env.ctx, env.principal(), env.project_id, params, progress=progress)
    reporter.log(f"evaluation {row.id}: {row.cases} case(s), {row.skipped} skipped")
    for label, s in row.summary.items():
        dice = (s.get("dice") or {}).get("mean")
        if dice is not None:
            reporter.log(f"label {label} ({s.get('name')}): mean Dice {dice:.3f}")
    return {"evaluation_id": row.id, "cases": row.cases, "skipped": row.skipped}


KIND = JobKind(
    name="evaluate",
    params=EvaluationRequest,
    run=_run,
    title="Evaluate a reader or an engine against the reference (Dice, HD95, ... report)",
    check=_check,
    resumable=True,
)
