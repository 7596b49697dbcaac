"""Shared CLI plumbing: settings from ``--home``, error reporting, progress bars.

Heavy modules (the database layer, pydicom...) are imported inside the commands that
need them, so ``medlabel --help`` answers at once."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from medlabel.core.errors import MedlabelError

if TYPE_CHECKING:
    from medlabel.core.settings import Settings
    from medlabel.security.audit import Origin
    from medlabel.services.context import Context

err_console = Console(stderr=True, soft_wrap=True)
console = Console(soft_wrap=True)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="MEDLABEL_HOME",
        help="Data directory (database, blobs). Default: ~/.medlabel",
        show_default=False,
    ),
]


def settings_for(home: Path | None, **overrides: Any) -> Settings:
    from pydantic import ValidationError

    from medlabel.core.settings import Settings

    kwargs: dict[str, Any] = dict(overrides)
    if home is not None:
        kwargs["home"] = home
    try:
        return Settings(**kwargs)
    except ValidationError as exc:  # report, don't trace
        raise typer.BadParameter(str(exc)) from None


@contextlib.contextmanager
def opened(home: Path | None, *, migrate: bool = True, **overrides: Any) -> Iterator[Context]:
    """Open the context for a command; errors end the command with a one-line reason.
    ``migrate=False`` leaves the database schema as it is (``medlabel restore``)."""
    from medlabel.security.audit import origin_scope
    from medlabel.services.context import open_context

    with reporting(), origin_scope(cli_origin()):
        ctx = open_context(settings_for(home, **overrides), migrate=migrate)
        try:
            yield ctx
        finally:
            ctx.close()


def cli_origin() -> Origin:
    """The audit origin of commands: ``cli:<host>``, acted by ``os:<login name>``."""
    import getpass
    import socket

    from medlabel.security.audit import Origin

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment or passwd database
        user = "unknown"
    return Origin(client=f"cli:{socket.gethostname()}", operator=f"os:{user}")


@contextlib.contextmanager
def reporting() -> Iterator[None]:
    """Turn medlabel errors into ``error: <message>`` and exit code 1."""
    try:
        yield
    except MedlabelError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None


def progress() -> Progress:
    """A progress bar on stderr (hidden when stderr is not a terminal)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=not sys.stderr.isatty(),
    )


def setup_logging(verbose: bool, log_format: str | None = None) -> None:
    """Log to stderr, as text or JSON lines (default: ``MEDLABEL_LOG_FORMAT``)."""
    from medlabel.core.logs import configure_logging

    configure_logging(logging.DEBUG if verbose else logging.WARNING, log_format)
