"""Job kinds: a named function with a pydantic model for its parameters.

A kind's function runs wherever an executor puts it (a thread of the server, the CLI's
main thread, later a Ray worker). It gets a :class:`JobEnv` (the job's facts and a
:class:`~medlabel.services.context.Context` opened for this process), its validated
parameters and a :class:`~medlabel.jobs.reporter.Reporter`; it returns a JSON-able dict
that becomes the job's result. It must not rely on anything else of the process that
queued it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from medlabel.core.errors import InvalidInputError, PermissionDeniedError
from medlabel.jobs.reporter import Reporter
from medlabel.security.roles import ProjectRole

if TYPE_CHECKING:
    from medlabel.jobs.batches import BatchMapper, BatchRun, WorkerFactory
    from medlabel.services.access import Principal
    from medlabel.services.context import Context

P = TypeVar("P", bound=BaseModel)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class JobInfo:
    """The facts of one job attempt, detached from any database session."""

    id: int
    kind: str
    project_id: int | None
    created_by: int | None
    attempt: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobEnv:
    """What a job kind's function runs in: the context of this process and its job."""

    ctx: Context
    job: JobInfo
    #: where :meth:`map_batches` runs batches (set by the executor; None: inline)
    mapper: BatchMapper | None = None

    def map_batches(
        self,
        factory: WorkerFactory[T, R],
        items: Sequence[T],
        *,
        batch_size: int = 8,
        cancelled: Callable[[], bool] | None = None,
    ) -> BatchRun[T, R]:
        """Run a worker over ``items`` in batches: inline here, or spread over the
        cluster's workers (each built once) on the Ray executor; see
        :mod:`medlabel.jobs.batches`. ``cancelled`` (e.g. ``reporter.cancelled``) is
        polled while waiting for batches."""
        from medlabel.jobs.batches import InlineMapper

        mapper = self.mapper or InlineMapper()
        return mapper.map_batches(
            self.ctx, factory, items, batch_size=batch_size, cancelled=cancelled
        )

    @property
    def project_id(self) -> int:
        """The job's project (for kinds that need one)."""
        if self.job.project_id is None:
            raise InvalidInputError(f"job {self.job.id} belongs to no project")
        return self.job.project_id

    def principal(self) -> Principal | None:
        """The user who started the job, as they are now (None: the machine's operator,
        through the CLI), so the job acts with their current rights.

        Raises
        ------
        PermissionDeniedError
            The user was deleted or deactivated since.
        """
        from medlabel.services.users import principal_of
        from medlabel.storage.db.models import User

        if self.job.created_by is None:
            return None
        with self.ctx.db.read() as s:
            user = s.get(User, self.job.created_by)
        if user is None or not user.is_active:
            raise PermissionDeniedError("the user who started this job no longer has an account")
        return principal_of(user)


RunFn = Callable[[JobEnv, P, Reporter], "dict[str, Any] | None"]
CheckFn = Callable[["Context", "int | None", P], None]


@dataclass(frozen=True)
class JobKind(Generic[P]):
    """A kind of job.

    Parameters
    ----------
    name
        Registered name, e.g. ``"export"``.
    params
        The pydantic model of its parameters (validated before anything is queued).
    run
        ``run(env, params, reporter) -> result dict``.
    title
        One line for people (UI, ``medlabel jobs kinds``).
    needs_project
        Whether a job of this kind belongs to a project.
    role
        The project role needed to start one (admins may always).
    check
        ``check(ctx, project_id, params)``, run when the job is submitted; raises a
        :class:`~medlabel.core.errors.MedlabelError` (a 4xx) for requests that cannot
        succeed, so they fail before they are queued.
    resumable
        Whether a run interrupted by a restart may simply run again (the function picks
        up what is done, or redoing it is harmless); otherwise such jobs fail.
    max_attempts
        Resumes after restarts stop after this many attempts (no crash loops).
    """

    name: str
    params: type[P]
    run: RunFn[P]
    title: str = ""
    needs_project: bool = True
    role: ProjectRole = ProjectRole.REVIEWER
    check: CheckFn[P] | None = None
    resumable: bool = False
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 64:
            raise ValueError(f"job kind name must have 1 to 64 characters: {self.name!r}")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def parse(self, raw: Mapping[str, Any] | None) -> P:
        """Validate parameters.

        Raises
        ------
        InvalidInputError
            Naming each wrong field (HTTP 422).
        """
        try:
            return self.params.model_validate(dict(raw or {}))
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
                for e in exc.errors()[:10]
            ]
            errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
            raise InvalidInputError(
                f"invalid parameters for job kind {self.name!r}: {'; '.join(problems)}",
                details={"errors": errors},
            ) from None

    def normalise(self, raw: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validated parameters as stored with the job (defaults filled in)."""
        return self.parse(raw).model_dump(mode="json")
