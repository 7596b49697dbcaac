"""Background jobs: a persisted state machine, kinds registered by name, executors.

A job is a row (:class:`medlabel.storage.db.models.Job`): ``queued → running →
succeeded | failed | cancelled``, with progress, a log and a cancel flag. Executors only
hold job ids, so a restart loses nothing: :func:`medlabel.jobs.store.recover` settles
jobs whose process died (re-queued if their kind is resumable, else failed) and queued
jobs run again.

Adding a kind::

    class Params(BaseModel):
        steps: int = Field(ge=1)

    def run(env: JobEnv, params: Params, reporter: Reporter) -> dict[str, Any]:
        for i in range(params.steps):
            reporter.check_cancelled()
            ...  # work, with env.ctx (db, blobs, engines) and env.principal()
            reporter.progress(i + 1, params.steps, "working")
        return {"done": params.steps}

    kinds.register(JobKind(name="my.kind", params=Params, run=run, title="..."))
"""

from medlabel.jobs.executor import Executor
from medlabel.jobs.registry import JobKinds, default_kinds
from medlabel.jobs.reporter import JobCancelled, LogLevel, MemoryReporter, Reporter
from medlabel.jobs.spec import JobEnv, JobInfo, JobKind
from medlabel.jobs.state import TERMINAL, JobState

__all__ = [
    "TERMINAL",
    "Executor",
    "JobCancelled",
    "JobEnv",
    "JobInfo",
    "JobKind",
    "JobKinds",
    "JobState",
    "LogLevel",
    "MemoryReporter",
    "Reporter",
    "default_kinds",
]
