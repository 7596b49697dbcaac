"""Projects, membership and label schemas."""

from __future__ import annotations

import logging
import re
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from medlabel.active import STRATEGIES
from medlabel.annotation.enums import LabelKind
from medlabel.annotation.schema import DEFAULT_COLOURS, LabelSpec
from medlabel.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.security.deid import DeidOptions
from medlabel.security.roles import CAN_CREATE_PROJECTS, ProjectRole, default_project_role
from medlabel.services.access import Principal, project_role, require_admin, require_project
from medlabel.services.assignments import MAX_READERS
from medlabel.services.context import Context
from medlabel.storage.db.models import (
    Annotation,
    Assignment,
    Image,
    Label,
    Project,
    ProjectMember,
    Revision,
    User,
)

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[^\x00-\x1f/\\]{1,100}$")


@dataclass
class ProjectSummary:
    project: Project
    role: ProjectRole
    counts: dict[str, int] = field(default_factory=dict)


def create_project(
    ctx: Context,
    actor: Principal | None,
    name: str,
    *,
    description: str = "",
    deid_options: DeidOptions | None = None,
) -> Project:
    """Create a project; its creator becomes a reviewer member.

    ``actor`` None means the machine's operator (CLI)."""
    name = name.strip()
    if not _NAME.match(name):
        raise InvalidInputError("project names are 1-100 characters, without slashes")
    if actor is not None and actor.role not in CAN_CREATE_PROJECTS:
        raise PermissionDeniedError("only administrators and reviewers may create projects")
    options = deid_options or DeidOptions()
    with ctx.db.write() as s:
        if s.scalar(select(Project.id).where(func.lower(Project.name) == name.lower())):
            raise ConflictError(f"a project named {name!r} already exists")
        project = Project(
            name=name,
            description=description,
            created_by=actor.id if actor else None,
            deid_secret=secrets.token_hex(32),
            deid_options=options.model_dump(),
        )
        s.add(project)
        s.flush()
        if actor is not None and not actor.is_admin:
            s.add(
                ProjectMember(
                    project_id=project.id, user_id=actor.id, role=ProjectRole.REVIEWER.value
                )
            )
        audit.record(
            s,
            actor,
            AuditAction.PROJECT_CREATE,
            target_type="project",
            target_id=project.id,
            project_id=project.id,
        )
    log.info("created project id=%s", project.id)
    return project


def find_project(ctx: Context, name_or_id: str) -> Project:
    """A project by exact name or numeric id (for the CLI, which acts as the operator)."""
    with ctx.db.read() as s:
        project = s.scalar(select(Project).where(Project.name == name_or_id))
        if project is None and name_or_id.isdigit():
            project = s.get(Project, int(name_or_id))
        if project is None:
            raise NotFoundError(f"no project named {name_or_id!r}")
        return project


def _status_counts(s: Session, project_ids: list[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    rows = s.execute(
        select(Image.project_id, Image.status, func.count())
        .where(Image.project_id.in_(project_ids))
        .group_by(Image.project_id, Image.status)
    )
    for pid, status, n in rows:
        counts[pid][status] = n
    return counts


def list_projects(ctx: Context, actor: Principal | None) -> list[ProjectSummary]:
    """The projects ``actor`` may see (all for admins and the operator, None), with image
    counts per status."""
    with ctx.db.read() as s:
        if actor is None or actor.is_admin:
            rows = [(p, ProjectRole.REVIEWER.value) for p in s.scalars(select(Project))]
        else:
            rows = list(
                s.execute(
                    select(Project, ProjectMember.role)
                    .join(ProjectMember, ProjectMember.project_id == Project.id)
                    .where(ProjectMember.user_id == actor.id)
                )
            )
        counts = _status_counts(s, [p.id for p, _ in rows])
    out = [ProjectSummary(p, ProjectRole(r), counts.get(p.id, {})) for p, r in rows]
    return sorted(out, key=lambda x: x.project.name.lower())


def get_project_summary(ctx: Context, project_id: int) -> ProjectSummary:
    """A project's summary for the operator (no permission check)."""
    with ctx.db.read() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise NotFoundError(f"project {project_id} not found")
        counts = _status_counts(s, [project_id]).get(project_id, {})
    return ProjectSummary(project, ProjectRole.REVIEWER, counts)


def get_project(ctx: Context, actor: Principal, project_id: int) -> ProjectSummary:
    with ctx.db.read() as s:
        project = require_project(s, actor, project_id)
        role = project_role(s, actor, project_id)
        counts = _status_counts(s, [project_id]).get(project_id, {})
    assert role is not None
    return ProjectSummary(project, role, counts)


def update_project(
    ctx: Context,
    actor: Principal,
    project_id: int,
    *,
    description: str | None = None,
    deid_options: DeidOptions | None = None,
    readers_per_image: int | None = None,
    blinded: bool | None = None,
    active_strategy: str | None = None,
) -> Project:
    """Change a project's description, its de-identification options (for future
    imports; already stored images are not changed) or its reader-study settings
    (``readers_per_image`` 1..20, ``blinded``; lowering the readers per image keeps the
    readers images already have), or its active-learning strategy (a
    :class:`medlabel.active.StrategyName` value)."""
    if readers_per_image is not None and not 1 <= readers_per_image <= MAX_READERS:
        raise InvalidInputError(
            f"readers_per_image must be within 1..{MAX_READERS}; got {readers_per_image}"
        )
    if active_strategy is not None and active_strategy not in STRATEGIES:
        raise InvalidInputError(
            f"unknown active_strategy {active_strategy!r}; use one of {', '.join(STRATEGIES)}"
        )
    with ctx.db.write() as s:
        project = require_project(s, actor, project_id, ProjectRole.REVIEWER)
        if active_strategy is not None:
            project.active_strategy = str(active_strategy)
        if description is not None:
            project.description = description
        if deid_options is not None:
            project.deid_options = deid_options.model_dump()
        if readers_per_image is not None:
            project.readers_per_image = readers_per_image
        if blinded is not None:
            project.blinded = blinded
        audit.record(
            s,
            actor,
            AuditAction.PROJECT_UPDATE,
            target_type="project",
            target_id=project_id,
            project_id=project_id,
            details={
                **audit.changed(
                    description=description,
                    deid_options=deid_options,
                    readers_per_image=readers_per_image,
                    blinded=blinded,
                ),
                # the reader-study settings are not free text: kept, like a user's role
                "readers_per_image": project.readers_per_image,
                "blinded": project.blinded,
                "active_strategy": project.active_strategy,
            },
        )
    return project


def delete_project(ctx: Context, actor: Principal | None, project_id: int) -> None:
    """Delete a project and everything in it (admins; ``actor`` None is the operator)."""
    if actor is not None:
        require_admin(actor)
    with ctx.db.write() as s:
        project = s.get(Project, project_id)
        if project is None:
            raise NotFoundError(f"project {project_id} not found")
        s.delete(project)
        audit.record(
            s,
            actor,
            AuditAction.PROJECT_DELETE,
            target_type="project",
            target_id=project_id,
            project_id=project_id,
        )
    ctx.forget_access()
    log.info("deleted project id=%s", project_id)


# membership ------------------------------------------------------------------------------
def list_members(ctx: Context, actor: Principal, project_id: int) -> list[tuple[User, str]]:
    with ctx.db.read() as s:
        require_project(s, actor, project_id)
        rows = s.execute(
            select(User, ProjectMember.role)
            .join(ProjectMember, ProjectMember.user_id == User.id)
            .where(ProjectMember.project_id == project_id)
            .order_by(User.username)
        )
        return list(rows)


def set_member(
    ctx: Context,
    actor: Principal | None,
    project_id: int,
    user_id: int,
    role: ProjectRole | str | None = None,
) -> ProjectMember:
    """Add a user to a project or change their role (project reviewers and admins)."""
    with ctx.db.write() as s:
        if actor is not None:
            require_project(s, actor, project_id, ProjectRole.REVIEWER)
        user = s.get(User, user_id)
        if user is None:
            raise NotFoundError(f"user {user_id} not found")
        try:
            prole = ProjectRole(role) if role else default_project_role(user.role)
        except ValueError:
            raise InvalidInputError(
                f"unknown project role {role!r}; choose one of "
                f"{', '.join(r.value for r in ProjectRole)}"
            ) from None
        member = s.get(ProjectMember, (project_id, user_id))
        if member is None:
            member = ProjectMember(project_id=project_id, user_id=user_id, role=prole.value)
            s.add(member)
        else:
            member.role = prole.value
        audit.record(
            s,
            actor,
            AuditAction.MEMBER_SET,
            target_type="user",
            target_id=user_id,
            project_id=project_id,
            details={"role": prole.value},
        )
    ctx.forget_access()
    return member


def remove_member(ctx: Context, actor: Principal, project_id: int, user_id: int) -> None:
    with ctx.db.write() as s:
        require_project(s, actor, project_id, ProjectRole.REVIEWER)
        member = s.get(ProjectMember, (project_id, user_id))
        if member is None:
            raise NotFoundError(f"user {user_id} is not a member of project {project_id}")
        s.delete(member)
        # their reader slots on images they never started go back to the queue
        started = select(Annotation.image_id).where(
            Annotation.project_id == project_id, Annotation.owner_id == user_id
        )
        result = s.execute(
            delete(Assignment).where(
                Assignment.project_id == project_id,
                Assignment.user_id == user_id,
                Assignment.image_id.not_in(started),
            )
        )
        freed = getattr(result, "rowcount", 0)
        audit.record(
            s,
            actor,
            AuditAction.MEMBER_REMOVE,
            target_type="user",
            target_id=user_id,
            project_id=project_id,
            details={"assignments_freed": int(freed or 0)},
        )
    ctx.forget_access()


# label schema ----------------------------------------------------------------------------
def list_labels(ctx: Context, actor: Principal | None, project_id: int) -> list[Label]:
    with ctx.db.read() as s:
        if actor is not None:
            require_project(s, actor, project_id)
        return list(
            s.scalars(select(Label).where(Label.project_id == project_id).order_by(Label.id))
        )


def add_labels(
    ctx: Context, actor: Principal | None, project_id: int, specs: list[LabelSpec]
) -> list[Label]:
    """Add labels to a project's schema in one transaction (all or none)."""
    with ctx.db.write() as s:
        if actor is not None:
            require_project(s, actor, project_id, ProjectRole.REVIEWER)
        elif s.get(Project, project_id) is None:
            raise NotFoundError(f"project {project_id} not found")
        existing = list(s.scalars(select(Label).where(Label.project_id == project_id)))
        names = {lab.name.lower() for lab in existing}
        values = {lab.value for lab in existing if lab.value is not None}
        created = []
        for i, spec in enumerate(specs):
            if spec.name.lower() in names:
                raise ConflictError(f"label {spec.name!r} already exists in this project")
            value = spec.value
            if spec.kind == LabelKind.MASK:
                if value is None:
                    value = next(v for v in range(1, 65536) if v not in values)
                elif value in values:
                    raise ConflictError(f"mask value {value} is already used by another label")
                values.add(value)
            elif value is not None:
                raise InvalidInputError(f"label {spec.name!r}: only mask labels have a value")
            label = Label(
                project_id=project_id,
                name=spec.name,
                kind=spec.kind.value,
                color=spec.color or DEFAULT_COLOURS[(len(existing) + i) % len(DEFAULT_COLOURS)],
                value=value,
                code_value=spec.code.value if spec.code else None,
                code_scheme=spec.code.scheme if spec.code else None,
                code_meaning=spec.code.meaning if spec.code else None,
                description=spec.description,
            )
            s.add(label)
            names.add(spec.name.lower())
            created.append(label)
        s.flush()
        for label in created:
            audit.record(
                s,
                actor,
                AuditAction.LABEL_CREATE,
                target_type="label",
                target_id=label.id,
                project_id=project_id,
                details={"kind": label.kind},
            )
    return created


def _label_in_use(s: Session, label: Label) -> bool:
    rows = s.execute(
        select(Revision.content, Revision.mask_summary)
        .join(Annotation, Annotation.id == Revision.annotation_id)
        .where(Annotation.project_id == label.project_id)
    )
    for content, mask_summary in rows:
        if label.value is not None and str(label.value) in (mask_summary or {}).get("voxels", {}):
            return True
        if _content_uses(content or {}, label.name):
            return True
    return False


def _content_uses(content: dict[str, Any], name: str) -> bool:
    if name in content.get("classes", []):
        return True
    return any(
        item.get("label") == name
        for key in ("boxes", "points", "notes")
        for item in content.get(key, [])
    )


def update_label(
    ctx: Context,
    actor: Principal,
    label_id: int,
    *,
    name: str | None = None,
    color: str | None = None,
    description: str | None = None,
) -> Label:
    """Rename or recolour a label. Renaming a label already used in annotations is refused
    (revisions are immutable and refer to labels by name)."""
    with ctx.db.write() as s:
        label = s.get(Label, label_id)
        if label is None:
            raise NotFoundError(f"label {label_id} not found")
        require_project(s, actor, label.project_id, ProjectRole.REVIEWER)
        if name is not None and name != label.name:
            spec = LabelSpec(name=name, kind=LabelKind(label.kind))
            if s.scalar(
                select(Label.id).where(
                    Label.project_id == label.project_id,
                    func.lower(Label.name) == spec.name.lower(),
                )
            ):
                raise ConflictError(f"label {spec.name!r} already exists in this project")
            if _label_in_use(s, label):
                raise ConflictError(
                    f"label {label.name!r} is used in annotations and cannot be renamed"
                )
            label.name = spec.name
        if color is not None:
            label.color = LabelSpec(name="x", kind=LabelKind.MASK, color=color).color or color
        if description is not None:
            label.description = description
        audit.record(
            s,
            actor,
            AuditAction.LABEL_UPDATE,
            target_type="label",
            target_id=label.id,
            project_id=label.project_id,
            details=audit.changed(name=name, color=color, description=description),
        )
    return label


def delete_label(ctx: Context, actor: Principal, label_id: int) -> None:
    with ctx.db.write() as s:
        label = s.get(Label, label_id)
        if label is None:
            raise NotFoundError(f"label {label_id} not found")
        require_project(s, actor, label.project_id, ProjectRole.REVIEWER)
        if _label_in_use(s, label):
            raise ConflictError(
                f"label {label.name!r} is used in annotations; it cannot be deleted"
            )
        s.delete(label)
        audit.record(
            s,
            actor,
            AuditAction.LABEL_DELETE,
            target_type="label",
            target_id=label_id,
            project_id=label.project_id,
        )
