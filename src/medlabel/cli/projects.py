"""``medlabel projects``, ``labels`` and ``members``: set up projects as the operator."""

from __future__ import annotations

from typing import Annotated

import typer

from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import Code
from medlabel.cli.common import HomeOption, console, opened
from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.security.roles import ProjectRole

projects_app = typer.Typer(help="Create and list projects.", no_args_is_help=True)
labels_app = typer.Typer(help="Edit a project's label schema.", no_args_is_help=True)
members_app = typer.Typer(help="Add users to projects.", no_args_is_help=True)

ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Project name or id.")]


@projects_app.command("create")
def create(
    name: str,
    description: Annotated[str, typer.Option("--description")] = "",
    shift_dates: Annotated[
        bool, typer.Option(help="Keep dates, shifted per patient, instead of removing them.")
    ] = False,
    retain_patient_characteristics: Annotated[
        bool, typer.Option(help="Keep age, sex, size and weight.")
    ] = False,
    retain_descriptions: Annotated[
        bool, typer.Option(help="Keep study/series descriptions (cleaned).")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Create a project (de-identification options apply to its imports)."""
    from medlabel.security.deid import DeidOptions
    from medlabel.services import projects as svc

    options = DeidOptions(
        shift_dates=shift_dates,
        retain_patient_characteristics=retain_patient_characteristics,
        retain_descriptions=retain_descriptions,
    )
    with opened(home) as ctx:
        project = svc.create_project(ctx, None, name, description=description, deid_options=options)
    console.print(f"created project {project.name!r} (id {project.id})")


@projects_app.command("list")
def list_(home: HomeOption = None) -> None:
    """List projects with image counts."""
    from medlabel.services import projects as svc

    with opened(home) as ctx:
        for summary in svc.list_projects(ctx, None):
            p = summary.project
            counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items())) or "no images"
            console.print(f"{p.id:>4}  {p.name:<30} {counts}")


def _parse_code(code: str | None) -> Code | None:
    if not code:
        return None
    parts = code.split(":", 2)
    if len(parts) != 3:
        raise InvalidInputError("--code must be VALUE:SCHEME:MEANING, e.g. 10200004:SCT:Liver")
    return Code(value=parts[0], scheme=parts[1], meaning=parts[2])


@labels_app.command("add")
def add_label(
    name: str,
    project: ProjectOption,
    kind: Annotated[LabelKind, typer.Option("--kind")] = LabelKind.MASK,
    color: Annotated[str | None, typer.Option("--color", help="#rrggbb")] = None,
    value: Annotated[int | None, typer.Option("--value", help="Mask value.")] = None,
    code: Annotated[
        str | None, typer.Option("--code", help="VALUE:SCHEME:MEANING (SNOMED CT, RadLex).")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Add a label to a project's schema."""
    from medlabel.annotation.schema import LabelSpec
    from medlabel.services import projects as svc

    with opened(home) as ctx:
        p = svc.find_project(ctx, project)
        try:
            spec = LabelSpec(name=name, kind=kind, color=color, value=value, code=_parse_code(code))
        except ValueError as exc:
            raise InvalidInputError(str(exc).splitlines()[-1]) from None
        (label,) = svc.add_labels(ctx, None, p.id, [spec])
    extra = f", value {label.value}" if label.value is not None else ""
    console.print(f"added {label.kind} label {label.name!r} ({label.color}{extra})")


@labels_app.command("list")
def list_labels(project: ProjectOption, home: HomeOption = None) -> None:
    """List a project's labels."""
    from medlabel.services import projects as svc

    with opened(home) as ctx:
        p = svc.find_project(ctx, project)
        for lab in svc.list_labels(ctx, None, p.id):
            value = f"={lab.value}" if lab.value is not None else ""
            console.print(f"{lab.id:>4}  {lab.name}{value:<6} {lab.kind:<15} {lab.color}")


@members_app.command("add")
def add_member(
    username: str,
    project: ProjectOption,
    role: Annotated[ProjectRole | None, typer.Option("--role")] = None,
    home: HomeOption = None,
) -> None:
    """Add a user to a project (or change their role there)."""
    from sqlalchemy import select

    from medlabel.services import projects as svc
    from medlabel.storage.db.models import User

    with opened(home) as ctx:
        p = svc.find_project(ctx, project)
        with ctx.db.read() as s:
            user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFoundError(f"no user named {username!r}")
        member = svc.set_member(ctx, None, p.id, user.id, role)
    console.print(f"{username} is {member.role} in {p.name!r}")
