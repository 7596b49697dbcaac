"""``medlabel receive`` (the DICOM C-STORE receiver alone) and ``medlabel routes``
(which called AE title delivers into which project)."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from medlabel.cli.common import HomeOption, console, err_console, opened

if TYPE_CHECKING:
    from medlabel.core.settings import Settings

routes_app = typer.Typer(
    help="Route studies sent to the DICOM receiver into projects by called AE title.",
    no_args_is_help=True,
)

#: loggers whose INFO lines (associations, batches, imports) the receiver shows
_RECEIVER_LOGGERS = ("medlabel.io.dimse", "medlabel.services.receiver")


def receive(
    port: Annotated[
        int | None,
        typer.Option("--port", help="DICOM port (default: MEDLABEL_DICOM_PORT, else 11112)."),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to listen on (default: MEDLABEL_DICOM_HOST/HOST)."),
    ] = None,
    ae_title: Annotated[
        str | None, typer.Option("--aet", help="The receiver's own AE title (for C-ECHO).")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Run the DICOM C-STORE receiver alone (without the web server) until interrupted.

    Studies are routed to projects by the called AE title (see `medlabel routes`),
    de-identified and imported like uploads."""
    from medlabel.services.receiver import Receiver, list_routes, spool_root

    for name in _RECEIVER_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    with opened(home) as ctx:
        chosen = port if port is not None else ctx.settings.dicom_port or 11112
        receiver = Receiver(ctx, host=host, port=chosen, ae_title=ae_title)
        receiver.start()  # a taken port ends the command with the reason
        routes = list_routes(ctx, None)
        console.print(
            f"DICOM receiver {receiver.ae_title} listening on {receiver.scp.host}:{receiver.port}"
            f" with {len(routes)} route(s); spool {spool_root(ctx)}. Ctrl-C stops."
        )
        if not routes:
            err_console.print(
                "no routes yet: add one with `medlabel routes add AE_TITLE -p PROJECT`"
            )
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            err_console.print("stopping: importing what was received...")
            receiver.stop()
        done = list(receiver.outcomes)
        console.print(
            f"received {len(done)} batch(es): {sum(o.images for o in done)} image(s) imported, "
            f"{sum(1 for o in done if o.quarantine is not None)} with quarantined files"
        )


def start_beside_workers(settings: Settings, workers: int) -> None:
    """For ``serve --workers N`` with a DICOM port: run the receiver in this (the
    supervising) process until it exits, and keep the worker processes, which read their
    settings from the environment, from each trying to bind the port."""
    if workers <= 1 or settings.dicom_port is None:
        return
    from medlabel.services.context import open_context
    from medlabel.services.receiver import Receiver

    os.environ.pop("MEDLABEL_DICOM_PORT", None)
    ctx = open_context(settings)
    receiver = Receiver(ctx)
    receiver.start()

    def _stop() -> None:
        receiver.stop()
        ctx.close()

    atexit.register(_stop)


@routes_app.command("add")
def add(
    ae_title: Annotated[str, typer.Argument(help="Called AE title senders use (1-16 chars).")],
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    calling: Annotated[
        list[str] | None,
        typer.Option("--allow-aet", help="Only this calling AE title may send (repeatable)."),
    ] = None,
    hosts: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="Only this IP address/network may send (repeatable)."),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Route studies sent with called AE title AE_TITLE into a project."""
    from medlabel.services import projects as projects_svc
    from medlabel.services.receiver import add_route

    with opened(home) as ctx:
        p = projects_svc.find_project(ctx, project)
        route = add_route(
            ctx, None, p.id, ae_title, allowed_calling_aets=calling or [], allowed_hosts=hosts or []
        )
    console.print(f"route {route.ae_title} -> project {p.name!r} (id {route.id})")


@routes_app.command("list")
def list_(home: HomeOption = None) -> None:
    """List the routes with their projects and allowed senders."""
    from medlabel.services import projects as projects_svc
    from medlabel.services.receiver import list_routes

    with opened(home) as ctx:
        routes = list_routes(ctx, None)
        names = {s.project.id: s.project.name for s in projects_svc.list_projects(ctx, None)}
    if not routes:
        console.print("no routes")
    for r in routes:
        who = ", ".join(r.allowed_calling_aets) or "any AE title"
        where = ", ".join(r.allowed_hosts) or "any host"
        project = names.get(r.project_id, str(r.project_id))
        console.print(f"{r.ae_title:<16} -> {project!r} (from {who}; {where})", highlight=False)


@routes_app.command("remove")
def remove(
    ae_title: Annotated[str, typer.Argument(help="The called AE title of the route.")],
    home: HomeOption = None,
) -> None:
    """Stop routing an AE title (studies already received stay)."""
    from medlabel.core.errors import NotFoundError
    from medlabel.services.receiver import find_route, remove_route

    with opened(home) as ctx:
        route = find_route(ctx, ae_title)
        if route is None:
            raise NotFoundError(f"no route for AE title {ae_title!r}; see `medlabel routes list`")
        remove_route(ctx, None, route.id)
    console.print(f"removed route {route.ae_title}")
