"""``medlabel jobs``: background jobs on this machine's database (as its operator).

Jobs queued here are run by a running server (``medlabel serve``); ``jobs run`` runs
one in this terminal instead, recorded like any other job."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from medlabel.cli.common import HomeOption, console, err_console, opened, progress

if TYPE_CHECKING:
    from medlabel.services.context import Context
    from medlabel.services.jobs import JobView

app = typer.Typer(help="Background jobs: list, watch, cancel, run.", no_args_is_help=True)

POLL_SECONDS = 0.5
FollowOption = Annotated[
    bool, typer.Option("--follow", "-f", help="Keep watching until the job is over.")
]


def _progress_text(view: JobView) -> str:
    j = view.job
    if j.progress_total:
        pct = 100.0 * j.progress_done / j.progress_total
        text = f"{j.progress_done:g}/{j.progress_total:g} ({pct:.0f}%)"
    else:
        text = f"{j.progress_done:g}" if j.progress_done else ""
    return f"{text} {j.progress_message}".strip()


def _row(view: JobView) -> str:
    j = view.job
    where = f"project {j.project_id}" if j.project_id is not None else "-"
    return (
        f"{j.id:>5}  {j.kind:<20} {j.state:<10} {where:<12} "
        f"{j.created_at:%Y-%m-%d %H:%M}  {_progress_text(view)}"
    )


def _print_job(view: JobView) -> None:
    j = view.job
    console.print(f"job {j.id}: {j.kind} — {j.state} (attempt {j.attempt})", highlight=False)
    if j.project_id is not None:
        console.print(f"  project:  {j.project_id}")
    console.print(f"  by:       {view.creator or 'the operator'}", highlight=False)
    console.print(f"  created:  {j.created_at:%Y-%m-%d %H:%M:%S}")
    if j.started_at:
        console.print(f"  started:  {j.started_at:%Y-%m-%d %H:%M:%S}  on {j.worker}")
    if j.finished_at:
        console.print(f"  finished: {j.finished_at:%Y-%m-%d %H:%M:%S}")
    if _progress_text(view):
        console.print(f"  progress: {_progress_text(view)}", highlight=False)
    console.print(f"  params:   {json.dumps(j.params)}", highlight=False)
    if j.result:
        console.print(f"  result:   {json.dumps(j.result)}", highlight=False)
    if j.error:
        console.print(f"  error:    {j.error}", style="red", highlight=False)
    if j.cancel_requested and not j.finished_at:
        console.print("  cancellation requested")


def _follow(ctx: Context, job_id: int, *, done: threading.Event | None = None) -> JobView:
    """Show the job's progress until it is over (or ``done`` is set); its final view."""
    from medlabel.jobs.state import JobState
    from medlabel.services.jobs import get_job

    with progress() as bar:
        task = bar.add_task("waiting", total=None)
        while True:
            view = get_job(ctx, None, job_id)
            j = view.job
            bar.update(
                task,
                description=j.progress_message or j.state,
                completed=j.progress_done,
                total=j.progress_total,
            )
            if JobState(j.state).terminal or (done is not None and done.is_set()):
                return view
            time.sleep(POLL_SECONDS)


def _print_lines(ctx: Context, job_id: int, after: int) -> int:
    from medlabel.services.jobs import job_logs

    for row in job_logs(ctx, None, job_id, after=after):
        level = "" if row.level == "info" else f"{row.level.upper()} "
        console.print(f"{row.at:%H:%M:%S} {level}{row.line}", highlight=False, markup=False)
        after = row.seq
    return after


def _end(view: JobView) -> None:
    if view.job.state == "failed":
        raise typer.Exit(1)
    if view.job.state == "cancelled":
        raise typer.Exit(130)


@app.command("list")
def list_(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Name or id.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="queued, running...")] = None,
    kind: Annotated[str | None, typer.Option("--kind")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
    home: HomeOption = None,
) -> None:
    """List jobs, newest first."""
    from medlabel.core.errors import InvalidInputError
    from medlabel.jobs.state import JobState
    from medlabel.services import projects as projects_svc
    from medlabel.services.jobs import list_jobs

    with opened(home) as ctx:
        if state is not None and state not in set(JobState):
            raise InvalidInputError(f"no state {state!r}; states: {', '.join(JobState)}")
        project_id = projects_svc.find_project(ctx, project).id if project else None
        views = list_jobs(ctx, None, project_id=project_id, state=state, kind=kind, limit=limit)
        for view in views:
            console.print(_row(view), highlight=False, markup=False)
        if not views:
            err_console.print("no jobs")


@app.command("show")
def show(job_id: int, follow: FollowOption = False, home: HomeOption = None) -> None:
    """Show a job: state, progress, parameters, result or error."""
    from medlabel.services.jobs import get_job

    with opened(home) as ctx:
        view = _follow(ctx, job_id) if follow else get_job(ctx, None, job_id)
        _print_job(view)
    if follow:
        _end(view)


@app.command("logs")
def logs(
    job_id: int,
    after: Annotated[int, typer.Option("--after", help="Only lines after this seq.")] = 0,
    follow: FollowOption = False,
    home: HomeOption = None,
) -> None:
    """Print a job's log (with --follow, new lines as they come, until it is over)."""
    from medlabel.jobs.state import JobState
    from medlabel.services.jobs import get_job

    with opened(home) as ctx:
        while True:
            state = JobState(get_job(ctx, None, job_id).job.state)
            after = _print_lines(ctx, job_id, after)
            if not follow or state.terminal:
                break
            time.sleep(POLL_SECONDS)


@app.command("cancel")
def cancel(job_id: int, home: HomeOption = None) -> None:
    """Cancel a queued job, or ask a running one to stop."""
    from medlabel.services.jobs import cancel_job

    with opened(home) as ctx:
        view = cancel_job(ctx, None, job_id)
    if view.job.state == "cancelled":
        console.print(f"job {job_id} cancelled")
    else:
        console.print(f"job {job_id}: cancellation requested; it stops at its next check")


@app.command("retry")
def retry(job_id: int, home: HomeOption = None) -> None:
    """Queue a failed or cancelled job again (a running server picks it up)."""
    from medlabel.services.jobs import retry_job

    with opened(home) as ctx:
        view = retry_job(ctx, None, job_id)
    console.print(f"job {job_id} queued again (attempt {view.job.attempt})")


@app.command("kinds")
def kinds(home: HomeOption = None) -> None:
    """List the kinds of job and their parameters."""
    with opened(home) as ctx:
        for kind in ctx.job_kinds.all():
            console.print(f"{kind.name}: {kind.title}", highlight=False, markup=False)
            props = kind.params.model_json_schema().get("properties", {})
            for name, spec in props.items():
                console.print(f"    {name}  {spec.get('description', '')}".rstrip(), markup=False)


def _parse_params(pairs: list[str], raw: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if raw:
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"--params is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise typer.BadParameter("--params must be a JSON object")
        params.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--param takes key=value, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


@app.command("run")
def run(
    kind: Annotated[str, typer.Argument(help="Job kind, see `medlabel jobs kinds`.")],
    project: Annotated[str | None, typer.Option("--project", "-p", help="Name or id.")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="key=value (value as JSON if it parses); repeatable."),
    ] = None,
    params_json: Annotated[str | None, typer.Option("--params", help="A JSON object.")] = None,
    home: HomeOption = None,
) -> None:
    """Run a job here and now, with a progress bar (Ctrl-C cancels it)."""
    from medlabel.jobs.runner import run_job
    from medlabel.services import projects as projects_svc
    from medlabel.services.jobs import create_claimed, get_job

    params = _parse_params(param or [], params_json)
    with opened(home) as ctx:
        project_id = projects_svc.find_project(ctx, project).id if project else None
        view = create_claimed(ctx, None, kind, params, project_id=project_id)
        job_id = view.job.id
        err_console.print(f"job {job_id}: {kind}")
        cancel, finished = threading.Event(), threading.Event()

        def work() -> None:
            try:
                run_job(ctx, job_id, cancel_event=cancel, claimed=True)
            finally:
                finished.set()

        worker = threading.Thread(target=work, name=f"medlabel-job-{job_id}")
        worker.start()
        try:
            _follow(ctx, job_id, done=finished)
        except KeyboardInterrupt:
            err_console.print("cancelling…")
            cancel.set()
        worker.join()
        view = get_job(ctx, None, job_id)
        _print_job(view)
    _end(view)
