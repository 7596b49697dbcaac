"""The job kinds this process knows, registered by name."""

from __future__ import annotations

from typing import Any

from medlabel.core.errors import NotFoundError
from medlabel.jobs.spec import JobKind


class JobKinds:
    """Named :class:`~medlabel.jobs.spec.JobKind` s (built by :func:`default_kinds`,
    extended by tests and plugins before jobs start)."""

    def __init__(self) -> None:
        self._kinds: dict[str, JobKind[Any]] = {}

    def register(self, kind: JobKind[Any]) -> JobKind[Any]:
        if kind.name in self._kinds:
            raise ValueError(f"a job kind named {kind.name!r} is already registered")
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> JobKind[Any]:
        """The kind named ``name``.

        Raises
        ------
        NotFoundError
            No such kind (the message lists the known ones).
        """
        try:
            return self._kinds[name]
        except KeyError:
            known = ", ".join(sorted(self._kinds)) or "none"
            raise NotFoundError(f"no job kind named {name!r} (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def all(self) -> list[JobKind[Any]]:
        return [self._kinds[n] for n in sorted(self._kinds)]


def default_kinds() -> JobKinds:
    """Every job kind medlabel ships."""
    from medlabel.jobs.kinds import register_all

    kinds = JobKinds()
    register_all(kinds)
    return kinds
