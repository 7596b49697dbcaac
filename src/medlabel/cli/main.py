"""The ``medlabel`` command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from medlabel import __version__
from medlabel.cli.audit import app as audit_app
from medlabel.cli.bench import app as bench_app
from medlabel.cli.common import (
    HomeOption,
    console,
    err_console,
    opened,
    progress,
    reporting,
    settings_for,
    setup_logging,
)
from medlabel.cli.evaluate import evaluate as evaluate_command
from medlabel.cli.jobs import app as jobs_app
from medlabel.cli.ops import register as register_ops
from medlabel.cli.pacs import app as pacs_app
from medlabel.cli.projects import labels_app, members_app, projects_app
from medlabel.cli.receive import receive, routes_app, start_beside_workers
from medlabel.cli.train import register as register_training
from medlabel.cli.users import app as users_app

app = typer.Typer(
    name="medlabel",
    help="AI-assisted annotation of medical images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(projects_app, name="projects")
app.add_typer(labels_app, name="labels")
app.add_typer(members_app, name="members")
app.add_typer(users_app, name="users")
app.add_typer(bench_app, name="bench")
app.add_typer(jobs_app, name="jobs")
app.add_typer(pacs_app, name="pacs")
app.add_typer(audit_app, name="audit")
app.add_typer(routes_app, name="routes")
app.command("receive")(receive)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
annotations_app = typer.Typer(help="Import existing annotations.", no_args_is_help=True)
app.add_typer(annotations_app, name="annotations")
app.command("eval")(evaluate_command)
register_training(app)  # train, predict
register_ops(app)  # backup, restore, migrate-db


def _version(value: bool) -> None:
    if value:
        console.print(f"medlabel {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    setup_logging(verbose)


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Files, folders or .zip archives.")],
    project: Annotated[
        str, typer.Option("--project", "-p", help="Project name; created if missing.")
    ],
    modality: Annotated[
        str | None, typer.Option("--modality", help="Modality of NIfTI/PNG files, e.g. MR.")
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the readable files, report the rest.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Import DICOM, NIfTI and PNG/JPEG/TIFF images (de-identified on the way in)."""
    from medlabel.core.errors import NotFoundError
    from medlabel.services import projects as projects_svc
    from medlabel.services.imports import ImportOptions, OnError, import_paths

    with opened(home) as ctx:
        created = False
        try:
            p = projects_svc.find_project(ctx, project)
        except NotFoundError:
            p = projects_svc.create_project(ctx, None, project)
            created = True
        options = ImportOptions(
            modality=modality.upper() if modality else None,
            on_error=OnError.SKIP if skip_invalid else OnError.FAIL,
        )
        with progress() as bar:
            task = bar.add_task("importing", total=None)

            def report(_: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                summary = import_paths(ctx, None, p.id, paths, options=options, progress=report)
            except BaseException:
                if created:  # leave no empty project behind a failed first import
                    projects_svc.delete_project(ctx, None, p.id)
                raise
        if created:
            err_console.print(f"created project {p.name!r}")
    c = summary.counts
    console.print(
        f"import {summary.import_id}: {c.get('images', 0)} image(s) from {c['files']} file(s) "
        f"({c['instances']} DICOM instance(s), {c['duplicates']} duplicate(s), "
        f"{c['skipped']} skipped, {c['rejected']} rejected) into {p.name!r}"
    )
    for prob in summary.problems[:20]:
        err_console.print(f"  {prob.file}: {prob.reason}", highlight=False)


@app.command("export")
def export(
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="nifti, dicom-seg, coco, csv or nnunet.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (new or empty).")],
    which: Annotated[str, typer.Option("--revisions", help="latest, or approved only.")] = "latest",
    no_images: Annotated[
        bool, typer.Option("--no-images", help="NIfTI: labels only, without the images.")
    ] = False,
    dataset_id: Annotated[int, typer.Option("--dataset-id", help="nnU-Net dataset id.")] = 1,
    home: HomeOption = None,
) -> None:
    """Export a project's annotations to a folder."""
    from medlabel.services import projects as projects_svc
    from medlabel.services.exports import export_to_dir

    with opened(home) as ctx:
        p = projects_svc.find_project(ctx, project)
        with progress() as bar:
            task = bar.add_task("exporting", total=None)

            def report(stage: str, done: int, total: int) -> None:
                bar.update(task, description=stage, completed=done, total=total)

            summary = export_to_dir(
                ctx,
                None,
                p.id,
                fmt,
                out,
                which=which,
                include_images=not no_images,
                dataset_id=dataset_id,
                progress=report,
            )
    console.print(f"exported {summary.exported} image(s) as {summary.format.value} to {out}")
    for item in summary.skipped[:20]:
        err_console.print(f"  skipped {item.get('name')}: {item['reason']}", highlight=False)


@annotations_app.command("import")
def import_annotations(
    files: Annotated[list[Path], typer.Argument(help="NIfTI masks, DICOM SEG or COCO files.")],
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    user: Annotated[str, typer.Option("--user", "-u", help="Whose annotations they become.")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="auto, nifti, dicom-seg or coco.")
    ] = "auto",
    image: Annotated[
        str | None, typer.Option("--image", help="Image name or id (NIfTI); default: by file name.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Import existing annotations as revisions of a user's annotations."""
    from sqlalchemy import select

    from medlabel.core.errors import InvalidInputError, NotFoundError
    from medlabel.services import projects as projects_svc
    from medlabel.services.access import project_role
    from medlabel.services.annotation_imports import import_annotations as run
    from medlabel.services.users import principal_of
    from medlabel.storage.db.models import Image, User

    with opened(home) as ctx:
        p = projects_svc.find_project(ctx, project)
        with ctx.db.read() as s:
            owner = s.scalar(select(User).where(User.username == user))
            image_id = None
            if image is not None:
                row = s.scalar(select(Image).where(Image.project_id == p.id, Image.name == image))
                if row is None and image.isdigit():
                    row = s.get(Image, int(image))
                if row is None or row.project_id != p.id:
                    raise NotFoundError(f"no image {image!r} in project {p.name!r}")
                image_id = row.id
            if owner is None:
                raise NotFoundError(f"no user named {user!r}")
            actor = principal_of(owner)
            if project_role(s, actor, p.id) is None:
                raise InvalidInputError(
                    f"{user} is not a member of {p.name!r}; add them first with "
                    f"`medlabel members add {user} --project {p.name!r}`"
                )
        total = 0
        for path in files:
            done = run(ctx, actor, p.id, path, fmt=fmt, image_id=image_id)
            total += len(done)
            for d in done:
                console.print(f"{path.name} → image {d.image_name!r} (revision {d.revision_id})")
    console.print(f"imported {total} annotation(s)")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64)] = 1,
    home: HomeOption = None,
) -> None:
    """Start the web server (API and browser UI)."""
    import uvicorn

    from medlabel.core.logs import uvicorn_log_config
    from medlabel.server.app import create_app
    from medlabel.services.context import open_context

    with reporting():
        settings = settings_for(home, host=host, port=port, prestart_workers=True)
        open_context(settings).close()  # migrate and check before forking workers
    console.print(f"medlabel {__version__} serving {settings.home} at http://{host}:{port}/")
    log_config = uvicorn_log_config(settings.log_format)  # JSON lines when configured
    if workers == 1:
        uvicorn.run(
            create_app(settings), host=host, port=port, log_config=log_config, access_log=False
        )
    else:
        os.environ["MEDLABEL_HOME"] = str(settings.home)
        start_beside_workers(settings, workers)  # the DICOM receiver, if any
        uvicorn.run(
            "medlabel.server.factory:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=log_config,
            access_log=False,
        )


@app.command()
def demo(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="MEDLABEL_HOME", help="Default: ~/.medlabel-demo"),
    ] = None,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Set up the demo data and exit.")
    ] = False,
) -> None:
    """Set up a demo project from sample images shipped with installed packages, and
    serve it. Prints the URL and the login."""
    import uvicorn

    from medlabel.server.app import create_app
    from medlabel.services.demo import setup_demo

    settings = settings_for(
        home or Path("~/.medlabel-demo"), host=host, port=port, demo=True, prestart_workers=True
    )
    with opened(settings.home, demo=True) as ctx:
        info = setup_demo(ctx, log=lambda msg: err_console.print(msg, highlight=False))
    url = f"http://{host}:{port}/"
    console.print(
        f"\nmedlabel demo: {info.images} images in project {info.project!r}\n"
        f"  URL:      {url}\n  login:    {info.username}\n  password: {info.password}\n"
        f"  data:     {settings.home}\n"
    )
    if not no_serve:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


@db_app.command("gc")
def db_gc(
    min_age: Annotated[
        float, typer.Option("--min-age", help="Only blobs older than this many seconds.")
    ] = 3600.0,
    home: HomeOption = None,
) -> None:
    """Delete stored files that nothing refers to (left by interrupted imports)."""
    from medlabel.services.maintenance import collect_garbage

    with opened(home) as ctx:
        report = collect_garbage(ctx, min_age_seconds=min_age)
    console.print(
        f"removed {report.removed} of {report.checked} blobs ({report.bytes_freed} bytes)"
    )


@db_app.command("upgrade")
def db_upgrade(home: HomeOption = None) -> None:
    """Apply database migrations (done automatically at start-up too)."""
    from medlabel.storage.db.migrate import current_revision

    with opened(home) as ctx:
        console.print(f"database at revision {current_revision(ctx.db.engine)}")
