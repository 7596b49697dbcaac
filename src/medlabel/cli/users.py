"""``medlabel users``: manage accounts on this machine (as its operator)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from medlabel.cli.common import HomeOption, console, opened
from medlabel.core.errors import NotFoundError
from medlabel.security.roles import Role

app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = typer.prompt("Password", hide_input=True)
    second = typer.prompt("Repeat password", hide_input=True)
    if first != second:
        raise typer.BadParameter("the passwords differ")
    return str(first)


@app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[Role, typer.Option("--role", help="Global role.")] = Role.ANNOTATOR,
    full_name: Annotated[str, typer.Option("--full-name")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Create a user; the password is asked for (or read from stdin)."""
    from medlabel.services import users as svc

    password = _read_password(password_stdin)
    with opened(home) as ctx:
        user = svc.create_user(ctx, username, password, role, full_name=full_name)
    console.print(f"created user {user.username!r} (id {user.id}, role {user.role})")


@app.command("list")
def list_(home: HomeOption = None) -> None:
    """List users."""
    from sqlalchemy import select

    from medlabel.storage.db.models import User

    with opened(home) as ctx, ctx.db.read() as s:
        for u in s.scalars(select(User).order_by(User.username)):
            state = "" if u.is_active else " (inactive)"
            console.print(f"{u.id:>4}  {u.username:<24} {u.role}{state}")


@app.command("set-password")
def set_password(
    username: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    home: HomeOption = None,
) -> None:
    """Reset a user's password (ends their sessions)."""
    from sqlalchemy import select

    from medlabel.services import users as svc
    from medlabel.storage.db.models import User

    password = _read_password(password_stdin)
    with opened(home) as ctx:
        with ctx.db.read() as s:
            user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFoundError(f"no user named {username!r}")
        svc.update_user(ctx, None, user.id, password=password)
    console.print(f"password of {username!r} changed; their sessions were ended")
