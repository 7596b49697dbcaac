"""Reader studies: who reads which image and each reader's queue (progress: study_progress).

A project wants ``readers_per_image`` independent readers per image. The *readers* of an
image are the users assigned to it (:class:`Assignment`) together with the owners of its
reader annotations (a reviewer may annotate without an assignment). Each user has at most
one reader annotation per image.

A reader's queue holds, in this order:

1. *returned* work: their readings a reviewer rejected and they have not resubmitted;
2. *assigned* work: images assigned to them that they have not submitted yet;
3. *open* images: images with fewer readers than wanted that they do not read yet. Asking
   for the next image (:func:`next_in_queue`) claims the first of them by assigning it,
   inside one write transaction that re-counts the readers of the image under a lock, so
   two readers asking at once never both become the N+1th reader.

Open images are ordered by :func:`rank_candidates`, the one place an active-learning
strategy plugs in.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, union
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import CompoundSelect

from medlabel.annotation.enums import AnnotationKind, AnnotationState, CommentKind
from medlabel.core.errors import ConflictError, InvalidInputError, NotFoundError
from medlabel.core.ids import utcnow
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.security.roles import ProjectRole, Role
from medlabel.services.access import Principal, project_role, require_project
from medlabel.services.context import Context
from medlabel.storage.db.models import (
    Annotation,
    Assignment,
    Draft,
    Image,
    Project,
    ProjectMember,
    ReviewComment,
    User,
)

log = logging.getLogger(__name__)

MAX_READERS = 20


class QueueReason(StrEnum):
    """Why an image is in a reader's queue."""

    RETURNED = "returned"
    ASSIGNED = "assigned"
    NEW = "new"


@dataclass
class QueueItem:
    image: Image
    reason: QueueReason
    #: the reader's annotation of the image, if started
    annotation: Annotation | None = None
    assignment: Assignment | None = None


@dataclass
class QueueView:
    items: list[QueueItem]
    #: images that still need readers and could be claimed by this reader
    open_images: int


@dataclass
class AssignmentView:
    assignment: Assignment
    image_name: str
    username: str
    annotation_id: int | None
    state: AnnotationState | None


@dataclass
class DistributeResult:
    created: list[AssignmentView]
    #: images that still lack readers because too few eligible readers remain
    short_images: list[int]


# readers ---------------------------------------------------------------------------------
def reader_pairs(project_id: int) -> CompoundSelect:
    """``(image_id, user_id)`` of every reader of the project's images."""
    return union(
        select(Assignment.image_id, Assignment.user_id).where(Assignment.project_id == project_id),
        select(Annotation.image_id, Annotation.owner_id).where(
            Annotation.project_id == project_id,
            Annotation.kind == AnnotationKind.READER.value,
            Annotation.owner_id.is_not(None),
        ),
    )


def image_readers(s: Session, image_id: int) -> set[int]:
    """The users reading an image (assigned, or owning a reader annotation of it)."""
    assigned = s.scalars(select(Assignment.user_id).where(Assignment.image_id == image_id))
    owners = s.scalars(
        select(Annotation.owner_id).where(
            Annotation.image_id == image_id,
            Annotation.kind == AnnotationKind.READER.value,
            Annotation.owner_id.is_not(None),
        )
    )
    return {int(u) for u in assigned} | {int(u) for u in owners if u is not None}


def rank_candidates(s: Session, project_id: int, image_ids: Iterable[int]) -> list[int]:
    """Order images for reading: by the project's active-learning strategy
    (``projects.active_strategy``; the default ``order`` is the image order, by id).

    The seam for active learning (:mod:`medlabel.services.active_ranking`); everything
    that hands out images (queues, distribution) calls it.
    """
    from medlabel.services.active_ranking import rank_images

    return rank_images(s, project_id, image_ids)


def returned_clause() -> ColumnElement[bool]:
    """SQL condition: an annotation a reviewer rejected that has not been resubmitted since
    (rejected, or saved again as a draft after the rejection)."""
    rejected_since = exists().where(
        ReviewComment.annotation_id == Annotation.id,
        ReviewComment.kind == CommentKind.REJECT.value,
        or_(
            Annotation.submitted_at.is_(None),
            ReviewComment.created_at >= Annotation.submitted_at,
        ),
    )
    return or_(
        Annotation.state == AnnotationState.REJECTED.value,
        and_(Annotation.state == AnnotationState.DRAFT.value, rejected_since),
    )


def _take_slot(
    s: Session, project: Project, image_id: int, user_id: int, by: int | None
) -> Assignment | None:
    """Assign ``user_id`` to read an image if it still has a free reader slot (the new
    assignment, or None).

    The image row is locked first (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite write
    transactions are serialised already), so the recount sees every committed claim.
    """
    s.execute(select(Image.id).where(Image.id == image_id).with_for_update())
    readers = image_readers(s, image_id)
    if user_id in readers or len(readers) >= project.readers_per_image:
        return None
    row = Assignment(project_id=project.id, image_id=image_id, user_id=user_id, assigned_by=by)
    s.add(row)
    s.flush()
    return row


def _claim(
    s: Session, actor: Principal, project: Project, image_id: int, via: str
) -> Assignment | None:
    """The actor takes a free reader slot of an image themselves (``via`` ``queue`` or
    ``save``): :func:`_take_slot`, recorded as ``assignment.claim``."""
    row = _take_slot(s, project, image_id, actor.id, actor.id)
    if row is not None:
        audit.record(
            s,
            actor,
            AuditAction.ASSIGNMENT_CLAIM,
            target_type="assignment",
            target_id=row.id,
            project_id=project.id,
            details={"image_id": image_id, "user_id": actor.id, "via": via},
        )
    return row


def claim_reading(s: Session, actor: Principal, image: Image) -> None:
    """Make the actor a reader of the image before they create their annotation of it
    (inside the caller's transaction).

    Reviewers and admins may annotate any image. Annotators need an assignment, or a free
    reader slot which they then take.

    Raises
    ------
    ConflictError
        The image already has all the readers its project wants.
    """
    role = project_role(s, actor, image.project_id)
    if role is not None and role.at_least(ProjectRole.REVIEWER):
        return
    if s.scalar(
        select(Assignment.id).where(Assignment.image_id == image.id, Assignment.user_id == actor.id)
    ):
        return
    project = s.get(Project, image.project_id)
    assert project is not None
    if _claim(s, actor, project, image.id, "save") is None:
        raise ConflictError(
            f"image {image.id} already has the {project.readers_per_image} reader(s) this "
            "project wants; take the next image from your queue, or ask a reviewer to assign "
            "this one to you",
            details={"image_id": image.id, "readers_per_image": project.readers_per_image},
        )


# queue -----------------------------------------------------------------------------------
def _owed(s: Session, actor: Principal, project_id: int) -> list[QueueItem]:
    """Returned work (oldest first), then assigned unsubmitted work (ranked)."""
    own = {
        a.image_id: a
        for a in s.scalars(
            select(Annotation).where(
                Annotation.project_id == project_id,
                Annotation.owner_id == actor.id,
                Annotation.kind == AnnotationKind.READER.value,
            )
        )
    }
    returned_ids = set(
        s.scalars(
            select(Annotation.id).where(
                Annotation.project_id == project_id,
                Annotation.owner_id == actor.id,
                Annotation.kind == AnnotationKind.READER.value,
                returned_clause(),
            )
        )
    )
    assignments = {
        a.image_id: a
        for a in s.scalars(
            select(Assignment).where(
                Assignment.project_id == project_id, Assignment.user_id == actor.id
            )
        )
    }
    returned = sorted(
        (a for a in own.values() if a.id in returned_ids), key=lambda a: (a.updated_at, a.id)
    )
    draft = AnnotationState.DRAFT.value

    def unfinished(image_id: int) -> bool:
        ann = own.get(image_id)
        return ann is None or (ann.state == draft and ann.id not in returned_ids)

    todo = [image_id for image_id in assignments if unfinished(image_id)]
    images = {
        i.id: i
        for i in s.scalars(select(Image).where(Image.id.in_([a.image_id for a in returned] + todo)))
    }
    items = [
        QueueItem(images[a.image_id], QueueReason.RETURNED, a, assignments.get(a.image_id))
        for a in returned
    ]
    items += [
        QueueItem(images[i], QueueReason.ASSIGNED, own.get(i), assignments[i])
        for i in rank_candidates(s, project_id, todo)
    ]
    return items


def _open_images(s: Session, actor: Principal, project: Project) -> list[int]:
    """Images with fewer readers than wanted that the actor does not read (unranked)."""
    pairs = reader_pairs(project.id).subquery()
    counts = select(pairs.c.image_id, func.count().label("n")).group_by(pairs.c.image_id).subquery()
    mine = select(pairs.c.image_id).where(pairs.c.user_id == actor.id)
    stmt = (
        select(Image.id)
        .outerjoin(counts, counts.c.image_id == Image.id)
        .where(
            Image.project_id == project.id,
            func.coalesce(counts.c.n, 0) < project.readers_per_image,
            Image.id.not_in(mine),
        )
    )
    return list(s.scalars(stmt))


def list_queue(ctx: Context, actor: Principal, project_id: int) -> QueueView:
    """What the actor owes in a project (returned, then assigned work), without claiming
    anything, and how many open images they could still claim."""
    with ctx.db.read() as s:
        project = require_project(s, actor, project_id, ProjectRole.ANNOTATOR)
        return QueueView(_owed(s, actor, project_id), len(_open_images(s, actor, project)))


def peek_next(
    ctx: Context, actor: Principal, project_id: int, *, after: int | None = None
) -> Image | None:
    """The image :func:`next_in_queue` would give, without claiming it (for browsing).

    With ``after`` (the image being viewed), that image comes last and open images are
    taken from the ones ranked after it, wrapping around."""
    with ctx.db.read() as s:
        project = require_project(s, actor, project_id)
        owed = [item.image.id for item in _owed(s, actor, project_id)]
        opened = _open_images(s, actor, project)
        ranked = rank_candidates(s, project_id, [*opened, *([after] if after else [])])
        if after is not None:
            i = ranked.index(after)
            ranked = ranked[i + 1 :] + ranked[:i]
        order = [x for x in owed if x != after] + ranked
        if after is not None and (after in owed or after in opened):
            order.append(after)
        return s.get(Image, order[0]) if order else None


def next_in_queue(ctx: Context, actor: Principal, project_id: int) -> QueueItem | None:
    """The next image the actor should read, claiming an open image if they owe nothing.

    Returned work comes first, then assigned work; only when both are empty is an open
    image assigned to the actor (atomically: the readers of the image are re-counted
    under a lock). None when nothing is left for this reader.
    """
    with ctx.db.write() as s:
        project = require_project(s, actor, project_id, ProjectRole.ANNOTATOR)
        owed = _owed(s, actor, project_id)
        if owed:
            return owed[0]
        for image_id in rank_candidates(s, project_id, _open_images(s, actor, project)):
            assignment = _claim(s, actor, project, image_id, "queue")
            if assignment is not None:
                image = s.get(Image, image_id)
                assert image is not None
                log.info("user id=%s claimed image id=%s", actor.id, image_id)
                return QueueItem(image, QueueReason.NEW, None, assignment)
        return None


# managing assignments (reviewers) --------------------------------------------------------
def _reader(s: Session, project_id: int, user_id: int) -> User:
    """A user who may read in the project (annotator or above, or an admin)."""
    user = s.get(User, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id} not found")
    principal = Principal(id=user.id, username=user.username, role=Role(user.role))
    role = project_role(s, principal, project_id)
    if role is None:
        raise InvalidInputError(
            f"user {user.username!r} is not a member of project {project_id}; add them first"
        )
    if not role.at_least(ProjectRole.ANNOTATOR):
        raise InvalidInputError(
            f"user {user.username!r} is a viewer in project {project_id} and cannot read images"
        )
    if not user.is_active:
        raise InvalidInputError(f"user {user.username!r} is deactivated")
    return user


def _project_images(s: Session, project_id: int, image_ids: Sequence[int]) -> list[int]:
    ids = sorted(set(image_ids))
    found = set(
        s.scalars(select(Image.id).where(Image.project_id == project_id, Image.id.in_(ids)))
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInputError(f"images {missing[:20]} are not in project {project_id}")
    return ids


def _views(s: Session, rows: Sequence[Assignment]) -> list[AssignmentView]:
    image_ids = {a.image_id for a in rows}
    names = dict(s.execute(select(Image.id, Image.name).where(Image.id.in_(image_ids))).all())
    users = dict(
        s.execute(
            select(User.id, User.username).where(User.id.in_({a.user_id for a in rows}))
        ).all()
    )
    readings = {
        (a.image_id, a.owner_id): a
        for a in s.scalars(
            select(Annotation).where(
                Annotation.image_id.in_(image_ids),
                Annotation.kind == AnnotationKind.READER.value,
            )
        )
    }
    out = []
    for a in rows:
        ann = readings.get((a.image_id, a.user_id))
        out.append(
            AssignmentView(
                a,
                names.get(a.image_id, ""),
                users.get(a.user_id, ""),
                ann.id if ann else None,
                AnnotationState(ann.state) if ann else None,
            )
        )
    return out


def list_assignments(
    ctx: Context,
    actor: Principal,
    project_id: int,
    *,
    user_id: int | None = None,
    image_id: int | None = None,
) -> list[AssignmentView]:
    """A project's assignments (reviewers see all; annotators only their own)."""
    with ctx.db.read() as s:
        require_project(s, actor, project_id, ProjectRole.ANNOTATOR)
        role = project_role(s, actor, project_id)
        stmt = select(Assignment).where(Assignment.project_id == project_id)
        if role is None or not role.at_least(ProjectRole.REVIEWER):
            if user_id not in (None, actor.id):
                return []
            user_id = actor.id
        if user_id is not None:
            stmt = stmt.where(Assignment.user_id == user_id)
        if image_id is not None:
            stmt = stmt.where(Assignment.image_id == image_id)
        rows = list(s.scalars(stmt.order_by(Assignment.image_id, Assignment.id)))
        return _views(s, rows)


def assign(
    ctx: Context, actor: Principal, project_id: int, user_id: int, image_ids: Sequence[int]
) -> list[AssignmentView]:
    """Assign images to a reader (all or none); images they already read are skipped.

    Raises
    ------
    ConflictError
        An image already has all the readers the project wants.
    """
    if not image_ids:
        raise InvalidInputError("give at least one image id")
    with ctx.db.write() as s:
        project = require_project(s, actor, project_id, ProjectRole.REVIEWER)
        user = _reader(s, project_id, user_id)
        ids = _project_images(s, project_id, image_ids)
        full, added = [], []
        for image_id in ids:
            if user.id in image_readers(s, image_id):
                continue
            if _take_slot(s, project, image_id, user.id, actor.id) is not None:
                added.append(image_id)
            else:
                full.append(image_id)
        if full:
            raise ConflictError(
                f"images {full[:20]} already have the {project.readers_per_image} reader(s) "
                "this project wants; unassign or reassign a reader first, or raise "
                "readers_per_image",
                details={"full_images": full},
            )
        if added:
            audit.record(
                s,
                actor,
                AuditAction.ASSIGNMENT_CREATE,
                target_type="user",
                target_id=user.id,
                project_id=project_id,
                details={"user_id": user.id, "images": len(added), "image_ids": added[:50]},
            )
        created = list(
            s.scalars(
                select(Assignment).where(
                    Assignment.user_id == user.id, Assignment.image_id.in_(ids)
                )
            )
        )
        return _views(s, created)


def _assignment(s: Session, actor: Principal, assignment_id: int) -> tuple[Assignment, Project]:
    row = s.get(Assignment, assignment_id)
    if row is None:
        raise NotFoundError(f"assignment {assignment_id} not found")
    project = require_project(s, actor, row.project_id, ProjectRole.REVIEWER)
    return row, project


def _reading(s: Session, image_id: int, user_id: int) -> Annotation | None:
    return s.scalar(
        select(Annotation).where(
            Annotation.image_id == image_id,
            Annotation.owner_id == user_id,
            Annotation.kind == AnnotationKind.READER.value,
        )
    )


def unassign(ctx: Context, actor: Principal, assignment_id: int) -> None:
    """Remove an assignment the reader has not started (reviewers).

    Raises
    ------
    ConflictError
        The reader has an annotation of the image: reassign it instead.
    """
    with ctx.db.write() as s:
        row, _ = _assignment(s, actor, assignment_id)
        if _reading(s, row.image_id, row.user_id) is not None:
            raise ConflictError(
                f"the reader of assignment {assignment_id} has started the image; reassign it "
                "to another reader instead"
            )
        s.delete(row)
        audit.record(
            s,
            actor,
            AuditAction.ASSIGNMENT_REMOVE,
            target_type="assignment",
            target_id=assignment_id,
            project_id=row.project_id,
            details={"image_id": row.image_id, "user_id": row.user_id},
        )


def reassign(ctx: Context, actor: Principal, assignment_id: int, to_user_id: int) -> AssignmentView:
    """Give an unfinished assignment to another reader (reviewers).

    Started work moves with the assignment: the new reader becomes the owner of the
    annotation and continues from its last revision (the history keeps the first reader as
    the author of their revisions); the first reader's autosaved draft moves too, unless
    the new reader has one already. Review comments stay with the annotation.

    Raises
    ------
    ConflictError
        The reading was submitted or approved (finished work keeps its reader), or the new
        reader already reads the image.
    """
    with ctx.db.write() as s:
        row, _ = _assignment(s, actor, assignment_id)
        user = _reader(s, row.project_id, to_user_id)
        if user.id == row.user_id:
            return _views(s, [row])[0]
        if user.id in image_readers(s, row.image_id):
            raise ConflictError(f"user {user.username!r} already reads image {row.image_id}")
        reading = _reading(s, row.image_id, row.user_id)
        if reading is not None:
            if reading.state in (AnnotationState.SUBMITTED.value, AnnotationState.APPROVED.value):
                raise ConflictError(
                    f"the reading of image {row.image_id} is {reading.state}; finished work "
                    "stays with its reader (reopen it first to hand it over)"
                )
            reading.owner_id = user.id
            reading.updated_at = utcnow()
        old = s.scalar(
            select(Draft).where(Draft.image_id == row.image_id, Draft.user_id == row.user_id)
        )
        if old is not None:
            taken = s.scalar(
                select(Draft.id).where(Draft.image_id == row.image_id, Draft.user_id == user.id)
            )
            if taken is None:
                old.user_id = user.id
            else:
                s.delete(old)
        log.info("assignment id=%s moved from user id=%s to id=%s", row.id, row.user_id, user.id)
        audit.record(
            s,
            actor,
            AuditAction.ASSIGNMENT_REASSIGN,
            target_type="assignment",
            target_id=row.id,
            project_id=row.project_id,
            details={
                "image_id": row.image_id,
                "from_user_id": row.user_id,
                "to_user_id": user.id,
                "annotation_id": reading.id if reading is not None else None,
            },
        )
        row.user_id = user.id
        row.assigned_by = actor.id
        row.assigned_at = utcnow()
        s.flush()
        return _views(s, [row])[0]


def distribute(
    ctx: Context, actor: Principal, project_id: int, user_ids: Sequence[int] | None = None
) -> DistributeResult:
    """Fill every image's reader slots, spreading images evenly over readers (reviewers).

    ``user_ids`` defaults to the project's members with the annotator role. Images are
    taken in :func:`rank_candidates` order; each free slot goes to the eligible reader
    (not reading the image yet) with the fewest readings, ties in the order given, so a
    fresh project is dealt round-robin.
    """
    with ctx.db.write() as s:
        project = require_project(s, actor, project_id, ProjectRole.REVIEWER)
        if user_ids is None:
            user_ids = list(
                s.scalars(
                    select(ProjectMember.user_id)
                    .join(User, User.id == ProjectMember.user_id)
                    .where(
                        ProjectMember.project_id == project_id,
                        ProjectMember.role == ProjectRole.ANNOTATOR.value,
                        User.is_active.is_(True),
                    )
                    .order_by(ProjectMember.user_id)
                )
            )
        users = [_reader(s, project_id, uid).id for uid in dict.fromkeys(user_ids)]
        if not users:
            raise InvalidInputError(
                "no readers to distribute to: add annotators to the project or give user_ids"
            )
        # lock the project's images against concurrent claims (PostgreSQL)
        all_ids = list(
            s.scalars(select(Image.id).where(Image.project_id == project_id).with_for_update())
        )
        readers: dict[int, set[int]] = defaultdict(set)
        for image_id, user_id in s.execute(reader_pairs(project_id)).all():
            readers[image_id].add(user_id)
        load = Counter({u: 0 for u in users})
        for rs in readers.values():
            load.update(u for u in rs if u in load)
        order = {u: i for i, u in enumerate(users)}
        created: list[Assignment] = []
        short: list[int] = []
        for image_id in rank_candidates(s, project_id, all_ids):
            need = project.readers_per_image - len(readers[image_id])
            eligible = sorted(
                (u for u in users if u not in readers[image_id]),
                key=lambda u: (load[u], order[u]),
            )
            for u in eligible[: max(need, 0)]:
                row = Assignment(
                    project_id=project_id, image_id=image_id, user_id=u, assigned_by=actor.id
                )
                s.add(row)
                created.append(row)
                readers[image_id].add(u)
                load[u] += 1
            if len(readers[image_id]) < project.readers_per_image:
                short.append(image_id)
        s.flush()
        if created:
            audit.record(
                s,
                actor,
                AuditAction.ASSIGNMENT_DISTRIBUTE,
                target_type="project",
                target_id=project_id,
                project_id=project_id,
                details={
                    "assignments": len(created),
                    "images": len({a.image_id for a in created}),
                    "readers": len({a.user_id for a in created}),
                    "short_images": len(short),
                },
            )
        views = _views(s, created)
    log.info("distributed %d assignments in project id=%s", len(created), project_id)
    return DistributeResult(views, short)


__all__ = [
    "MAX_READERS",
    "AssignmentView",
    "DistributeResult",
    "QueueItem",
    "QueueReason",
    "QueueView",
    "assign",
    "claim_reading",
    "distribute",
    "image_readers",
    "list_assignments",
    "list_queue",
    "next_in_queue",
    "peek_next",
    "rank_candidates",
    "reader_pairs",
    "reassign",
    "returned_clause",
    "unassign",
]
