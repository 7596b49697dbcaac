"""Starting, watching, cancelling and retrying background jobs, with permissions.

Who may do what: a project job is seen and handled by the project's reviewers (admins
everywhere) and by the member who started it; starting one needs its kind's role
(reviewer unless the kind says otherwise). Jobs of no project are the admins' (and
their creator's). ``actor`` None is the machine's operator (CLI): everything.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from medlabel.core.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from medlabel.jobs import store
from medlabel.jobs.runner import run_job
from medlabel.jobs.spec import JobKind
from medlabel.jobs.state import JobState
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, project_role, require_admin, require_project
from medlabel.services.context import Context
from medlabel.storage.db.models import Job, JobLog, ProjectMember, User

MAX_LIST = 500
MAX_LOG_LINES = 5000


@dataclass(frozen=True)
class JobView:
    """A job with the name of the user who started it."""

    job: Job
    creator: str | None


def _kind(ctx: Context, name: str) -> JobKind[Any]:
    try:
        return ctx.job_kinds.get(name)
    except NotFoundError as exc:
        raise InvalidInputError(exc.message) from None


def _require_start(
    s: Session, actor: Principal | None, kind: JobKind[Any], project_id: int | None
) -> None:
    if actor is None:
        return
    if project_id is None:
        require_admin(actor)
    else:
        require_project(s, actor, project_id, kind.role)


def _require_job(s: Session, actor: Principal | None, job_id: int) -> Job:
    """Load a job the actor may see and handle."""
    job = s.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    if actor is None or actor.is_admin or job.created_by == actor.id:
        return job
    if job.project_id is None:
        raise NotFoundError(f"job {job_id} not found")
    role = project_role(s, actor, job.project_id)
    if role is None:
        raise NotFoundError(f"job {job_id} not found")
    if not role.at_least(ProjectRole.REVIEWER):
        raise PermissionDeniedError("only the project's reviewers may see jobs others started")
    return job


def _view(s: Session, job: Job) -> JobView:
    name = (
        s.scalar(select(User.username).where(User.id == job.created_by)) if job.created_by else None
    )
    return JobView(job, name)


def _prepare(
    ctx: Context,
    actor: Principal | None,
    kind_name: str,
    params: Mapping[str, Any] | None,
    project_id: int | None,
) -> tuple[JobKind[Any], dict[str, Any]]:
    kind = _kind(ctx, kind_name)
    if kind.needs_project and project_id is None:
        raise InvalidInputError(f"a {kind.name} job belongs to a project; name one")
    if not kind.needs_project and project_id is not None:
        raise InvalidInputError(f"a {kind.name} job belongs to no project")
    with ctx.db.read() as s:
        _require_start(s, actor, kind, project_id)
    parsed = kind.parse(params)
    if kind.check is not None:
        kind.check(ctx, project_id, parsed)
    return kind, parsed.model_dump(mode="json")


def _create(
    ctx: Context,
    actor: Principal | None,
    kind: str,
    params: Mapping[str, Any] | None,
    project_id: int | None,
    running_as: str | None = None,
) -> JobView:
    """Validate and store a job with its ``job.submit`` audit event (the kind, never the
    parameters: they may hold free text)."""
    found, normalised = _prepare(ctx, actor, kind, params, project_id)
    with ctx.db.write() as s:
        job = store.add(
            s,
            kind=found.name,
            params=normalised,
            project_id=project_id,
            created_by=actor.id if actor else None,
            running_as=running_as,
        )
        audit.record(
            s,
            actor,
            AuditAction.JOB_SUBMIT,
            target_type="job",
            target_id=job.id,
            project_id=project_id,
            details={"kind": job.kind, "foreground": running_as is not None},
        )
    return JobView(job, actor.username if actor else None)


def submit_job(
    ctx: Context,
    actor: Principal | None,
    kind: str,
    params: Mapping[str, Any] | None = None,
    *,
    project_id: int | None = None,
) -> JobView:
    """Validate and queue a job; this process's executor runs it if this process runs
    jobs (a server), else the next server that starts or looks at the queue.

    Raises
    ------
    InvalidInputError
        Unknown kind, invalid parameters, or a request the kind's check refuses (422);
        nothing is stored then.
    NotFoundError, PermissionDeniedError
        The actor may not start this kind of job in the project.
    """
    view = _create(ctx, actor, kind, params, project_id)
    ctx.offer_job(view.job.id)
    return view


def create_claimed(
    ctx: Context,
    actor: Principal | None,
    kind: str,
    params: Mapping[str, Any] | None = None,
    *,
    project_id: int | None = None,
) -> JobView:
    """Validate and store a job already claimed by this process, to be run here with
    ``run_job(ctx, job_id, claimed=True)`` (see :func:`run_in_foreground`)."""
    return _create(ctx, actor, kind, params, project_id, running_as=store.worker_id())


def run_in_foreground(
    ctx: Context,
    actor: Principal | None,
    kind: str,
    params: Mapping[str, Any] | None = None,
    *,
    project_id: int | None = None,
    cancel_event: threading.Event | None = None,
) -> JobView:
    """Create a job and run it in this thread, recorded like any job."""
    view = create_claimed(ctx, actor, kind, params, project_id=project_id)
    run_job(ctx, view.job.id, cancel_event=cancel_event, claimed=True)
    return get_job(ctx, actor, view.job.id)


def list_jobs(
    ctx: Context,
    actor: Principal | None,
    *,
    project_id: int | None = None,
    state: JobState | str | None = None,
    kind: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[JobView]:
    """Jobs the actor may see, newest first (``before``: ids below this one)."""
    stmt = select(Job, User.username).outerjoin(User, User.id == Job.created_by)
    with ctx.db.read() as s:
        if project_id is not None:
            stmt = stmt.where(Job.project_id == project_id)
            if actor is not None:
                role = project_role(s, actor, project_id)
                if role is None:
                    raise NotFoundError(f"project {project_id} not found")
                if not role.at_least(ProjectRole.REVIEWER):
                    stmt = stmt.where(Job.created_by == actor.id)
        elif actor is not None and not actor.is_admin:
            reviewing = select(ProjectMember.project_id).where(
                ProjectMember.user_id == actor.id, ProjectMember.role == ProjectRole.REVIEWER.value
            )
            stmt = stmt.where(
                or_(
                    Job.created_by == actor.id,
                    and_(Job.project_id.is_not(None), Job.project_id.in_(reviewing)),
                )
            )
        if state is not None:
            stmt = stmt.where(Job.state == JobState(state).value)
        if kind is not None:
            stmt = stmt.where(Job.kind == kind)
        if before is not None:
            stmt = stmt.where(Job.id < before)
        stmt = stmt.order_by(Job.id.desc()).limit(max(1, min(limit, MAX_LIST)))
        return [JobView(job, name) for job, name in s.execute(stmt)]


def get_job(ctx: Context, actor: Principal | None, job_id: int) -> JobView:
    with ctx.db.read() as s:
        return _view(s, _require_job(s, actor, job_id))


def job_logs(
    ctx: Context, actor: Principal | None, job_id: int, *, after: int = 0, limit: int = 1000
) -> list[JobLog]:
    """Log lines with ``seq`` above ``after``, oldest first (poll with the last seq)."""
    with ctx.db.read() as s:
        _require_job(s, actor, job_id)
        return list(
            s.scalars(
                select(JobLog)
                .where(JobLog.job_id == job_id, JobLog.seq > after)
                .order_by(JobLog.seq)
                .limit(max(1, min(limit, MAX_LOG_LINES)))
            )
        )


def _who(actor: Principal | None) -> str:
    return actor.username if actor else "the operator"


def cancel_job(ctx: Context, actor: Principal | None, job_id: int) -> JobView:
    """Cancel a queued job at once; ask a running one to stop (it ends ``cancelled`` at
    its next check).

    Raises
    ------
    ConflictError
        The job is already over.
    """
    with ctx.db.write() as s:
        _require_job(s, actor, job_id)
        job = store.lock_job(s, job_id)
        assert job is not None
        if JobState(job.state).terminal:
            raise ConflictError(f"job {job_id} is already {job.state}; there is nothing to cancel")
        was = job.state
        store.request_cancel(s, job, _who(actor))
        audit.record(
            s,
            actor,
            AuditAction.JOB_CANCEL,
            target_type="job",
            target_id=job_id,
            project_id=job.project_id,
            details={"kind": job.kind, "was": was, "state": job.state},
        )
    ctx.notify_cancel(job_id)
    return get_job(ctx, actor, job_id)


def retry_job(ctx: Context, actor: Principal | None, job_id: int) -> JobView:
    """Queue a failed or cancelled job again, as a new attempt with the same parameters.

    Raises
    ------
    ConflictError
        The job is queued, running or succeeded.
    InvalidInputError
        Its kind is gone, or its parameters are no longer valid.
    """
    with ctx.db.read() as s:
        job = _require_job(s, actor, job_id)
        kind = _kind(ctx, job.kind)
        _require_start(s, actor, kind, job.project_id)
        params = kind.parse(job.params)
    if kind.check is not None:
        kind.check(ctx, job.project_id, params)
    with ctx.db.write() as s:
        row = store.lock_job(s, job_id)
        if row is None:
            raise NotFoundError(f"job {job_id} not found")
        if row.state not in (JobState.FAILED, JobState.CANCELLED):
            raise ConflictError(
                f"job {job_id} is {row.state}; only failed or cancelled jobs can be retried"
            )
        store.requeue(s, row, f"retry by {_who(actor)}")
        audit.record(
            s,
            actor,
            AuditAction.JOB_RETRY,
            target_type="job",
            target_id=job_id,
            project_id=row.project_id,
            details={"kind": row.kind, "attempt": row.attempt},
        )
    ctx.offer_job(job_id)
    return get_job(ctx, actor, job_id)
