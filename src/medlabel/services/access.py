"""Who is acting, and what they may see and do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from medlabel.core.errors import NotFoundError, PermissionDeniedError
from medlabel.security.roles import ProjectRole, Role
from medlabel.storage.db.models import Project, ProjectMember

if TYPE_CHECKING:
    from medlabel.services.context import Context


@dataclass(frozen=True)
class Principal:
    """An authenticated user."""

    id: int
    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def require_admin(principal: Principal) -> None:
    """Raise unless ``principal`` is a global admin."""
    if not principal.is_admin:
        raise PermissionDeniedError("only administrators may do this")


def project_role(session: Session, principal: Principal, project_id: int) -> ProjectRole | None:
    """The principal's role in a project (admins act as reviewers everywhere)."""
    if principal.is_admin:
        return ProjectRole.REVIEWER
    role = session.scalar(
        select(ProjectMember.role).where(
            ProjectMember.project_id == project_id, ProjectMember.user_id == principal.id
        )
    )
    return ProjectRole(role) if role else None


def require_project(
    session: Session,
    principal: Principal,
    project_id: int,
    need: ProjectRole = ProjectRole.VIEWER,
) -> Project:
    """Load a project the principal may act on with at least role ``need``.

    Raises
    ------
    NotFoundError
        The project does not exist or the principal is not a member (the two are not
        told apart, so project names do not leak).
    PermissionDeniedError
        The principal is a member with a lower role than ``need``.
    """
    project = session.get(Project, project_id)
    role = project_role(session, principal, project_id) if project else None
    if project is None or role is None:
        raise NotFoundError(f"project {project_id} not found")
    if not role.at_least(need):
        raise PermissionDeniedError(
            f"this needs the {need.value} role in project {project.name!r}; you are {role.value}"
        )
    return project


def cached_project_role(ctx: Context, principal: Principal, project_id: int) -> ProjectRole | None:
    """:func:`project_role`, remembered for ``auth_cache_seconds`` (for hot read paths
    such as rendered slices)."""
    key = ("role", principal.id, project_id)
    role = ctx.auth_cache.get(key)
    if role is None:
        with ctx.db.read() as s:
            role = project_role(s, principal, project_id) or "none"
        ctx.auth_cache.set(key, role)
    return None if role == "none" else ProjectRole(role)
