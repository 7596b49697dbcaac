"""The seam between "a job should run" and where it runs."""

from __future__ import annotations

from typing import Protocol


class Executor(Protocol):
    """Runs queued jobs somewhere. It holds job ids only: the job's row is the truth,
    so whatever an executor loses (a restart, a crash) is recovered from the database.

    Implementations: :class:`medlabel.jobs.local.LocalExecutor` (threads of this
    process); a Ray executor (tasks on a cluster) calls the same
    :func:`medlabel.jobs.runner.run_job` in its workers.
    """

    def start(self) -> None:
        """Begin taking jobs: settle jobs an earlier process left running (see
        :func:`medlabel.jobs.store.recover`) and pick up the queued ones."""

    def submit(self, job_id: int) -> None:
        """Run the queued job ``job_id`` when a worker is free (returns at once)."""

    def cancel(self, job_id: int) -> None:
        """Ask the job to stop now if this executor runs it (the job's cancel flag in
        the database, set by the caller, reaches it anyway within a heartbeat)."""

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking jobs; ask running ones to stop and, with ``wait``, give them a
        grace period. Jobs still queued stay queued for the next start."""
