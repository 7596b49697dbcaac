"""``medlabel audit``: verify and export the audit log (as the machine's operator)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from medlabel.cli.common import HomeOption, console, err_console, opened

app = typer.Typer(help="Verify and export the audit log.", no_args_is_help=True)


def _when(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 date or time, e.g. 2026-11-01 or 2026-11-01T08:00",
            param_hint=name,
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@app.command("verify")
def verify(
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            help="A head hash exported earlier (`medlabel audit head`); it must still be in "
            "the chain, which catches rows cut from the end.",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Recompute the hash chain. Exit 0 if intact; 1 naming the first broken row."""
    from medlabel.services.audit import verify_audit

    with opened(home) as ctx:
        result = verify_audit(ctx, None, anchor)
    if result.ok:
        console.print(
            f"audit log intact: {result.rows} row(s) checked in {result.seconds:.2f} s; "
            f"head row {result.head_id} hash {result.head_hash}",
            highlight=False,
        )
        return
    where = f" at row {result.broken_id}" if result.broken_id is not None else ""
    err_console.print(
        f"[bold red]audit log broken[/]{where}: {result.reason} — {result.message} "
        f"({result.rows} row(s) intact before it, {result.seconds:.2f} s)",
        highlight=False,
    )
    raise typer.Exit(1)


@app.command("head")
def head(home: HomeOption = None) -> None:
    """Print the newest row's id and hash: keep it elsewhere as an anchor for `verify`."""
    from medlabel.services.audit import audit_head

    with opened(home) as ctx:
        row_id, row_hash = audit_head(ctx)
    console.print(f"{row_id} {row_hash}", highlight=False)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="A new .jsonl or .csv file.")],
    since: Annotated[
        str | None, typer.Option("--since", help="From this UTC date/time (ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Before this UTC date/time (ISO 8601).")
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project (name or id).")
    ] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="An action, or a prefix like 'annotation.'.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Write audit events (with their hashes) to a file, and print the head hash."""
    from medlabel.core.errors import NotFoundError
    from medlabel.services import projects as projects_svc
    from medlabel.services.audit import export_audit, make_filter

    start, end = _when(since, "--since"), _when(until, "--until")
    with opened(home) as ctx:
        project_id = None
        if project is not None:
            try:
                project_id = projects_svc.find_project(ctx, project).id
            except NotFoundError:
                if not project.isdigit():
                    raise
                project_id = int(project)  # a deleted project's events
        where = make_filter(project_id=project_id, since=start, until=end, action=action)
        n, (head_id, head_hash) = export_audit(ctx, None, out, where)
    console.print(f"exported {n} event(s) to {out}", highlight=False)
    console.print(f"head: row {head_id} hash {head_hash}", highlight=False)
