"""The job state machine."""

from __future__ import annotations

import pytest

from medlabel.core.errors import ConflictError
from medlabel.jobs.state import (
    ACTIVE,
    ALLOWED,
    TERMINAL,
    JobState,
    can_transition,
    check_transition,
    sources,
)


def test_every_state_has_rules_and_terminal_states_only_go_back_to_the_queue() -> None:
    assert set(ALLOWED) == set(JobState)
    assert set(JobState) == TERMINAL | ACTIVE and not TERMINAL & ACTIVE
    assert ALLOWED[JobState.SUCCEEDED] == frozenset()
    for state in (JobState.FAILED, JobState.CANCELLED):
        assert ALLOWED[state] == {JobState.QUEUED}
        assert state.terminal
    assert not JobState.RUNNING.terminal


@pytest.mark.parametrize(
    ("current", "target", "ok"),
    [
        ("queued", "running", True),
        ("queued", "cancelled", True),
        ("queued", "succeeded", False),
        ("running", "succeeded", True),
        ("running", "failed", True),
        ("running", "cancelled", True),
        ("running", "queued", True),  # resumed after a restart
        ("running", "running", False),
        ("succeeded", "queued", False),
        ("succeeded", "failed", False),
        ("failed", "queued", True),  # retry
        ("failed", "running", False),
        ("cancelled", "queued", True),
        ("cancelled", "succeeded", False),
    ],
)
def test_transitions(current: str, target: str, ok: bool) -> None:
    assert can_transition(current, target) is ok
    if ok:
        assert check_transition(current, target) == JobState(target)
    else:
        with pytest.raises(ConflictError, match=f"{current} job cannot become {target}"):
            check_transition(current, target)


def test_sources_and_unknown_states() -> None:
    assert sources(JobState.RUNNING) == {JobState.QUEUED}
    assert sources("queued") == {JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}
    with pytest.raises(ValueError):
        can_transition("paused", "running")
