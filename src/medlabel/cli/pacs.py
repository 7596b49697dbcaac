"""``medlabel pacs``: a project's DICOMweb PACS connections; search, pull, push.

Commands act as the machine's operator. Secrets are read from ``--secret-env`` (the
name of an environment variable) or asked for, never taken from the command line.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Annotated

import typer

from medlabel.cli.common import HomeOption, console, err_console, opened, progress

if TYPE_CHECKING:
    from medlabel.services.context import Context

app = typer.Typer(
    help="PACS (DICOMweb): connections, search, pull studies in, push results.",
    no_args_is_help=True,
)

ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Project name or id.")]
PacsOption = Annotated[str, typer.Option("--pacs", help="Connection name (or id).")]


def _ids(ctx: Context, project: str, pacs_name: str) -> tuple[int, int]:
    from medlabel.services import pacs as svc
    from medlabel.services.projects import find_project

    p = find_project(ctx, project)
    return p.id, svc.find_connection(ctx, None, p.id, pacs_name).id


@app.command("add")
def add(
    project: ProjectOption,
    name: Annotated[str, typer.Option("--name", help="Name of the connection.")],
    url: Annotated[str, typer.Option("--url", help="DICOMweb root, e.g. http://h:8042/dicom-web")],
    auth: Annotated[str, typer.Option("--auth", help="none, basic or bearer.")] = "none",
    username: Annotated[str | None, typer.Option("--username", help="For basic auth.")] = None,
    secret_env: Annotated[
        str | None,
        typer.Option("--secret-env", help="Environment variable holding the password or token."),
    ] = None,
    check: Annotated[bool, typer.Option(help="Contact the PACS once to check it.")] = True,
    home: HomeOption = None,
) -> None:
    """Add a PACS connection to a project."""
    from medlabel.services import pacs as svc
    from medlabel.services.projects import find_project

    secret = None
    if auth != "none":
        if secret_env:
            secret = os.environ.get(secret_env)
            if secret is None:
                raise typer.BadParameter(f"environment variable {secret_env} is not set")
        else:
            secret = typer.prompt("password" if auth == "basic" else "token", hide_input=True)
    spec = {"name": name, "url": url, "auth_kind": auth, "username": username, "secret": secret}
    with opened(home) as ctx:
        p = find_project(ctx, project)
        view = svc.create_connection(ctx, None, p.id, spec)
        if check:
            try:
                svc.check_connection(ctx, None, view.id)
            except BaseException:
                svc.delete_connection(ctx, None, view.id)
                raise
    console.print(f"PACS connection {view.id} {view.name!r} → {view.url}", highlight=False)


@app.command("list")
def list_(project: ProjectOption, home: HomeOption = None) -> None:
    """The project's PACS connections (secrets are never shown)."""
    from medlabel.services import pacs as svc
    from medlabel.services.projects import find_project

    with opened(home) as ctx:
        views = svc.list_connections(ctx, None, find_project(ctx, project).id)
    for v in views:
        who = f" as {v.username}" if v.username else ""
        console.print(
            f"{v.id:>4}  {v.name:<20} {v.url}  ({v.auth_kind.value}{who})", highlight=False
        )
    if not views:
        err_console.print("no PACS connections")


@app.command("remove")
def remove(project: ProjectOption, pacs_name: PacsOption, home: HomeOption = None) -> None:
    """Delete a PACS connection."""
    from medlabel.services import pacs as svc

    with opened(home) as ctx:
        _, conn_id = _ids(ctx, project, pacs_name)
        svc.delete_connection(ctx, None, conn_id)
    console.print(f"removed PACS connection {pacs_name!r}", highlight=False)


def _date(value: str | None, what: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{what} must be a date like 2024-01-31, got {value!r}") from None


@app.command("search")
def search(
    project: ProjectOption,
    pacs_name: PacsOption,
    patient_id: Annotated[str | None, typer.Option("--patient-id")] = None,
    accession: Annotated[str | None, typer.Option("--accession")] = None,
    modality: Annotated[str | None, typer.Option("--modality")] = None,
    date_from: Annotated[str | None, typer.Option("--date-from", help="YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, typer.Option("--date-to", help="YYYY-MM-DD")] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="Part of the study description.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit")] = 100,
    offset: Annotated[int, typer.Option("--offset")] = 0,
    home: HomeOption = None,
) -> None:
    """Search the PACS for studies (QIDO-RS); prints one study per line, UID first."""
    from medlabel.io.dicomweb import StudyQuery
    from medlabel.services import pacs as svc

    with opened(home) as ctx:
        query = StudyQuery(
            patient_id=patient_id,
            accession=accession,
            modality=modality,
            date_from=_date(date_from, "--date-from"),
            date_to=_date(date_to, "--date-to"),
            description=description,
            limit=limit,
            offset=offset,
        )
        _, conn_id = _ids(ctx, project, pacs_name)
        found = svc.search(ctx, None, conn_id, query)
    for m in found:
        console.print(
            f"{m.study_uid}  {m.study_date or '-':<8}  {'/'.join(m.modalities) or '-':<6} "
            f"{m.patient_id:<16} {m.accession:<12} {m.description}  "
            f"({m.series_count} series, {m.instance_count} instances)",
            highlight=False,
        )
    err_console.print(f"{len(found)} stud{'y' if len(found) == 1 else 'ies'}")


@app.command("pull")
def pull(
    study_uids: Annotated[list[str], typer.Argument(help="StudyInstanceUIDs to pull.")],
    project: ProjectOption,
    pacs_name: PacsOption,
    home: HomeOption = None,
) -> None:
    """Retrieve studies (WADO-RS) and import them, de-identified, into the project."""
    from medlabel.services import pacs as svc

    with opened(home) as ctx:
        _, conn_id = _ids(ctx, project, pacs_name)
        svc.check_pull(ctx, None, conn_id, study_uids)
        with progress() as bar:
            task = bar.add_task("pulling", total=len(study_uids))

            def report(stage: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=stage)

            result = svc.pull(ctx, None, conn_id, study_uids, progress=report)
    c = result.counts
    console.print(
        f"pulled {result.studies} stud{'y' if result.studies == 1 else 'ies'}: "
        f"{len(result.image_ids)} image(s) from {c.get('instances', 0)} instance(s), "
        f"{c.get('duplicates', 0)} duplicate(s), {c.get('rejected', 0)} rejected "
        f"(imports {', '.join(map(str, result.import_ids))})",
        highlight=False,
    )
    for p in result.problems[:20]:
        err_console.print(f"  {p.get('file')}: {p.get('reason')}", highlight=False)


@app.command("push")
def push(
    annotation_id: Annotated[int, typer.Argument(help="The annotation to send.")],
    project: ProjectOption,
    pacs_name: PacsOption,
    kind: Annotated[str, typer.Option("--kind", help="seg (DICOM SEG) or sr (DICOM SR).")] = "seg",
    approved: Annotated[
        bool, typer.Option("--approved", help="The approved revision, not the latest.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Send an annotation to the PACS as DICOM SEG or SR (STOW-RS). It references the
    de-identified UIDs stored in medlabel."""
    from medlabel.core.errors import InvalidInputError
    from medlabel.services import pacs as svc

    with opened(home) as ctx:
        if kind not in {k.value for k in svc.PushKind}:
            raise InvalidInputError(f"--kind must be seg or sr, got {kind!r}")
        _, conn_id = _ids(ctx, project, pacs_name)
        which = svc.PushWhich.APPROVED if approved else svc.PushWhich.LATEST
        result = svc.push(ctx, None, annotation_id, conn_id, kind, which)
    console.print(
        f"stored {result.kind.value.upper()} {result.sop_instance_uid} in study "
        f"{result.study_uid} on {pacs_name!r}",
        highlight=False,
    )
