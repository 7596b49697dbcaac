"""Operations commands: ``backup``, ``restore`` and ``migrate-db``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medlabel.cli.common import HomeOption, console, err_console, opened, progress, reporting


def register(app: typer.Typer) -> None:
    """Add the operations commands to the ``medlabel`` app."""
    app.command("backup")(backup)
    app.command("restore")(restore)
    app.command("migrate-db")(migrate_db)


def backup(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Archive to create: FILE.tar, or FILE.tar.gz compressed."),
    ],
    home: HomeOption = None,
) -> None:
    """Back up the database and every blob it refers to into one archive (consistent
    while the server runs). The archive holds password hashes: keep it private."""
    from medlabel.services.backup import create_backup

    with opened(home) as ctx, progress() as bar:
        task = bar.add_task("backup", total=None)

        def report(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        result = create_backup(ctx, out, progress=report)
    m = result.manifest
    console.print(
        f"backup {out}: {m.rows} rows in {len(m.tables)} tables, {len(m.blobs)} blobs "
        f"({m.blob_bytes} bytes), schema revision {m.revision}"
    )


def restore(
    archive: Annotated[Path, typer.Argument(help="A file written by `medlabel backup`.")],
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="MEDLABEL_DATABASE_URL",
            help="Restore into this (empty) database instead of the home's SQLite file.",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only verify the archive; change nothing.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Restore a backup into an empty installation (a new --home, or an empty database
    with --database-url). The archive is verified completely before anything is written;
    a failed restore leaves the target empty."""
    from medlabel.services.backup import restore_backup, verify_backup

    with reporting(), progress() as bar:
        task = bar.add_task("checking", total=None)

        def report(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        manifest = verify_backup(archive, progress=report)
    console.print(
        f"{archive}: backup of medlabel {manifest.medlabel_version} made {manifest.created_at}, "
        f"{manifest.rows} rows in {len(manifest.tables)} tables, {len(manifest.blobs)} blobs: "
        "complete and intact"
    )
    if check:
        return
    overrides = {"database_url": database_url} if database_url else {}
    # a new database is created at the backup's schema revision, upgraded after the restore
    with opened(home, migrate=False, **overrides) as ctx, progress() as bar:
        task = bar.add_task("restoring", total=None)

        def report2(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        result = restore_backup(ctx, archive, manifest=manifest, progress=report2)
    console.print(
        f"restored {sum(result.tables.values())} rows and {result.blobs} blobs "
        f"({result.blobs_written} new) into {ctx.settings.home}; row counts verified"
    )
    if result.upgraded_from is not None:
        console.print(f"upgraded the restored database from schema revision {result.upgraded_from}")
    if not result.audit_chain_ok:
        err_console.print(
            "warning: the restored audit log does not verify (`medlabel audit verify`)"
        )


def migrate_db(
    to: Annotated[
        str,
        typer.Option(
            "--to", help="The new, empty database, e.g. postgresql://user:pw@host/medlabel."
        ),
    ],
    home: HomeOption = None,
) -> None:
    """Copy the home's database (SQLite by default) into another, empty database such as
    PostgreSQL, verify the row counts, and print how to switch to it. Stop the server
    first: changes made after the copy starts are not copied."""
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from medlabel.core.errors import InvalidInputError, MissingDependencyError
    from medlabel.services.backup import copy_database, display_url
    from medlabel.storage.db.engine import Database
    from medlabel.storage.db.migrate import upgrade

    shown = display_url(to)
    with opened(home) as ctx:
        try:
            target = Database(to)
        except ArgumentError:
            raise InvalidInputError(
                f"--to {shown} is not a database URL (e.g. postgresql://user:pw@host/db)"
            ) from None
        except ImportError as exc:
            raise MissingDependencyError(
                f"the driver for {shown} is not installed ({exc.name}); for PostgreSQL "
                "install medlabel[postgres]"
            ) from None
        try:
            try:
                upgrade(target.engine)
            except SQLAlchemyError as exc:
                reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                raise InvalidInputError(f"cannot use the database {shown}: {reason}") from None
            with progress() as bar:
                task = bar.add_task("copying", total=None)

                def report(stage: str, done: int, total: int) -> None:
                    bar.update(task, description=stage, completed=done, total=total)

                result = copy_database(ctx.db, target, progress=report)
        finally:
            target.dispose()
        source = display_url(ctx.db.url)
    console.print(
        f"copied {result.rows} rows in {len(result.tables)} tables from {source} to {shown}; "
        "row counts verified.\n"
        "To switch: stop medlabel, then start it with\n"
        f"  MEDLABEL_DATABASE_URL={shown}\n"
        "(with the real password; keep MEDLABEL_HOME, or the blob settings, as they are: "
        "the blobs do not move)."
    )
