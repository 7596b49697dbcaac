"""The job state machine.

::

    queued ──> running ──> succeeded
      │          │ └────> failed ────┐
      │          └──────> cancelled ─┤ retry: back to queued (a new attempt)
      └──> cancelled, failed ────────┘
    running ──> queued   (a resumable job whose process went away)

``succeeded``, ``failed`` and ``cancelled`` are *terminal*: nothing changes them by
itself; only a user's retry puts a failed or cancelled job back in the queue.
"""

from __future__ import annotations

from enum import StrEnum

from medlabel.core.errors import ConflictError


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the job is over (it can only be retried)."""
        return self in TERMINAL


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE = frozenset({JobState.QUEUED, JobState.RUNNING})

ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
    ),
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
    JobState.SUCCEEDED: frozenset(),
}


def can_transition(current: JobState | str, target: JobState | str) -> bool:
    """Whether a job in state ``current`` may move to ``target``.

    Examples
    --------
    >>> can_transition("queued", "running"), can_transition("succeeded", "queued")
    (True, False)
    """
    return JobState(target) in ALLOWED[JobState(current)]


def sources(target: JobState | str) -> frozenset[JobState]:
    """The states a job may be in to move to ``target`` (for conditional updates)."""
    target = JobState(target)
    return frozenset(s for s, targets in ALLOWED.items() if target in targets)


def check_transition(current: JobState | str, target: JobState | str) -> JobState:
    """Return ``target`` as a :class:`JobState`, or raise if the move is not allowed.

    Raises
    ------
    ConflictError
        The job is in a state it cannot leave for ``target`` (HTTP 409).
    """
    current, target = JobState(current), JobState(target)
    if target not in ALLOWED[current]:
        raise ConflictError(f"a {current.value} job cannot become {target.value}")
    return target
