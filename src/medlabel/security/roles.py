"""Roles and what they may do.

A user has a global role; within a project, a member has a project role. Global admins
may do everything everywhere. Project roles are ordered: viewer < annotator < reviewer.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Global role of a user."""

    ADMIN = "admin"
    REVIEWER = "reviewer"
    ANNOTATOR = "annotator"
    VIEWER = "viewer"


class ProjectRole(StrEnum):
    """Role of a member within one project."""

    VIEWER = "viewer"
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: ProjectRole | str) -> bool:
        """True if this role includes the rights of ``other``."""
        return self.rank >= ProjectRole(other).rank


_RANK = {ProjectRole.VIEWER: 0, ProjectRole.ANNOTATOR: 1, ProjectRole.REVIEWER: 2}

#: who may create projects (they become the project's reviewer)
CAN_CREATE_PROJECTS = frozenset({Role.ADMIN, Role.REVIEWER})


def default_project_role(role: Role | str) -> ProjectRole:
    """The project role a user of global ``role`` gets when added without one."""
    role = Role(role)
    if role in (Role.ADMIN, Role.REVIEWER):
        return ProjectRole.REVIEWER
    return ProjectRole.ANNOTATOR if role == Role.ANNOTATOR else ProjectRole.VIEWER
