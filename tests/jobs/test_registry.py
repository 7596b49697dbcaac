"""Job kinds: registration, lookup, parameter validation, the job's user."""

from __future__ import annotations

import pytest

from medlabel.core.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from medlabel.jobs import JobEnv, JobInfo, JobKind, JobKinds, default_kinds
from medlabel.security.roles import Role
from medlabel.services.context import Context
from medlabel.services.users import create_user, update_user
from tests.conftest import PASSWORD
from tests.jobs.conftest import Probe, StepParams, _steps


def _kind(name: str = "k", **kw: object) -> JobKind[StepParams]:
    return JobKind(name=name, params=StepParams, run=_steps(Probe()), **kw)  # type: ignore[arg-type]


def test_registration_and_lookup() -> None:
    kinds = JobKinds()
    kinds.register(_kind("b"))
    kinds.register(_kind("a"))
    assert [k.name for k in kinds.all()] == ["a", "b"] and "a" in kinds
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(_kind("a"))
    with pytest.raises(NotFoundError, match=r"no job kind named 'c' \(known: a, b\)"):
        kinds.get("c")
    with pytest.raises(ValueError, match="1 to 64 characters"):
        _kind("")
    with pytest.raises(ValueError, match="max_attempts"):
        _kind("x", max_attempts=0)
    assert "export" in default_kinds()


def test_parameters_are_validated_and_normalised() -> None:
    kind = _kind("steps")
    assert kind.normalise({"steps": 2}) == {"steps": 2, "fail_at": None, "wait": False}
    with pytest.raises(InvalidInputError) as err:
        kind.parse({"steps": 0, "wait": "perhaps"})
    assert err.value.message.startswith("invalid parameters for job kind 'steps': steps: ")
    assert [e["loc"] for e in err.value.details["errors"]] == [["steps"], ["wait"]]


def test_the_job_acts_as_its_user_as_they_are_now(ctx: Context) -> None:
    create_user(ctx, "root", PASSWORD, Role.ADMIN)  # (one admin must stay active)
    user = create_user(ctx, "ann", PASSWORD, Role.ANNOTATOR)
    env = JobEnv(ctx, JobInfo(id=1, kind="k", project_id=None, created_by=user.id, attempt=1))
    principal = env.principal()
    assert principal is not None and principal.username == "ann"
    assert JobEnv(ctx, JobInfo(1, "k", None, None, 1)).principal() is None  # the operator
    with pytest.raises(InvalidInputError, match="belongs to no project"):
        _ = env.project_id
    update_user(ctx, None, user.id, is_active=False)
    with pytest.raises(PermissionDeniedError, match="no longer has an account"):
        env.principal()
