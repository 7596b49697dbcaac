"""Progress of a reader study: per reader (assigned, started, returned, submitted,
approved, remaining) and for the project (images fully read, approved, open reader slots)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select

from medlabel.annotation.enums import AnnotationKind, AnnotationState
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, project_role, require_project
from medlabel.services.assignments import reader_pairs, returned_clause
from medlabel.services.context import Context
from medlabel.storage.db.models import Annotation, Image, ProjectMember, User


@dataclass
class UserProgress:
    user_id: int
    username: str
    role: ProjectRole | None
    assigned: int = 0
    not_started: int = 0
    started: int = 0
    submitted: int = 0
    approved: int = 0
    rejected: int = 0

    @property
    def remaining(self) -> int:
        return self.assigned - self.submitted - self.approved


@dataclass
class ProjectProgress:
    readers_per_image: int
    images: int
    #: images with readers_per_image readings that are submitted or approved
    images_complete: int
    #: images with readers_per_image approved readings (or an approved consensus)
    images_approved: int
    #: reader slots not yet given to anyone (sum over images of wanted - readers)
    open_slots: int
    users: list[UserProgress] = field(default_factory=list)


def progress(ctx: Context, actor: Principal, project_id: int) -> ProjectProgress:
    """Per-reader and project-wide progress of a reader study.

    Reviewers see every reader; others only their own row (totals are for everyone)."""
    with ctx.db.read() as s:
        project = require_project(s, actor, project_id)
        role = project_role(s, actor, project_id)
        n = project.readers_per_image
        image_ids = list(s.scalars(select(Image.id).where(Image.project_id == project_id)))
        readers: dict[int, set[int]] = defaultdict(set)
        for image_id, user_id in s.execute(reader_pairs(project_id)).all():
            readers[image_id].add(user_id)
        readings = list(
            s.execute(
                select(
                    Annotation.id, Annotation.image_id, Annotation.owner_id, Annotation.state
                ).where(
                    Annotation.project_id == project_id,
                    Annotation.kind == AnnotationKind.READER.value,
                    Annotation.owner_id.is_not(None),
                )
            ).all()
        )
        returned = set(
            s.scalars(
                select(Annotation.id).where(Annotation.project_id == project_id, returned_clause())
            )
        )
        consensus_approved = set(
            s.scalars(
                select(Annotation.image_id).where(
                    Annotation.project_id == project_id,
                    Annotation.kind == AnnotationKind.CONSENSUS.value,
                    Annotation.approved_revision_id.is_not(None),
                )
            )
        )
        members = dict(
            s.execute(
                select(ProjectMember.user_id, ProjectMember.role).where(
                    ProjectMember.project_id == project_id
                )
            ).all()
        )
        user_ids = set(members) | {u for rs in readers.values() for u in rs}
        names = dict(s.execute(select(User.id, User.username).where(User.id.in_(user_ids))).all())
    rows = {
        u: UserProgress(u, names.get(u, ""), ProjectRole(members[u]) if u in members else None)
        for u in user_ids
    }
    for rs in readers.values():
        for u in rs:
            rows[u].assigned += 1
    done: Counter[int] = Counter()
    approved: Counter[int] = Counter()
    for ann_id, image_id, owner, state in readings:
        assert owner is not None
        row = rows[owner]
        if state == AnnotationState.SUBMITTED.value:
            row.submitted += 1
            done[image_id] += 1
        elif state == AnnotationState.APPROVED.value:
            row.approved += 1
            done[image_id] += 1
            approved[image_id] += 1
        elif ann_id in returned:
            row.rejected += 1
        else:
            row.started += 1
    for row in rows.values():
        row.not_started = row.assigned - row.submitted - row.approved - row.rejected - row.started
    users = sorted(rows.values(), key=lambda r: r.username)
    if role is None or not role.at_least(ProjectRole.REVIEWER):
        users = [r for r in users if r.user_id == actor.id]
    return ProjectProgress(
        readers_per_image=n,
        images=len(image_ids),
        images_complete=sum(1 for i in image_ids if done[i] >= n),
        images_approved=sum(1 for i in image_ids if approved[i] >= n or i in consensus_approved),
        open_slots=sum(max(0, n - len(readers[i])) for i in image_ids),
        users=users,
    )
