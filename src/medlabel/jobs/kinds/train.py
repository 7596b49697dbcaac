"""``train``: train a model on the project's reference labels and register it as the
next version of its task (see :mod:`medlabel.services.models`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from medlabel.core.errors import InvalidInputError
from medlabel.jobs.reporter import Reporter
from medlabel.jobs.spec import JobEnv, JobKind
from medlabel.security.roles import ProjectRole
from medlabel.services.context import Context


class TrainParams(BaseModel):
    """What to train."""

    task: Literal["seg", "cls", "det"] = Field(
        default="seg",
        description="seg: masks; cls: image classes (classification labels); det: boxes.",
    )
    labels: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Labels to learn (mask, classification or box labels, by the task); "
        "empty: all of the task's kind.",
    )
    epochs: int | None = Field(default=None, ge=1, le=10_000, description="Maximum epochs.")
    minutes: float | None = Field(
        default=10.0, gt=0, le=24 * 60, description="Wall-clock training budget."
    )
    seed: int = Field(default=0, ge=0)
    name: str = Field(default="", max_length=100, description="Default: <task>-v<version>.")
    activate: bool | None = Field(
        default=None, description="Make it the active model (default: when none is)."
    )
    onnx: bool = Field(default=True, description="Also export ONNX for fast CPU inference.")
    arch: str = Field(default="auto", max_length=40)
    threads: int | None = Field(default=None, ge=1, le=64, description="Default: cores, ≤ 4.")
    #: advanced trainer options (patch_size, base_filters, samples_per_epoch, ...)
    options: dict[str, Any] = Field(default_factory=dict)


def _check(ctx: Context, project_id: int | None, params: TrainParams) -> None:
    from medlabel.engines.deep.tasks import get_task
    from medlabel.services.training_data import check_trainable

    assert project_id is not None
    get_task(params.task)  # names the extra to install when torch is missing
    images = check_trainable(ctx, project_id, params.task, params.labels)
    if "folds" in params.options:  # per-class counts: checked by the job
        from medlabel.engines.deep.classification import fold_count

        folds = fold_count(params.options["folds"])
        if folds > 1 and params.task != "cls":
            raise InvalidInputError("folds (a cross-validated ensemble) are for task cls only")
        if folds > images:
            raise InvalidInputError(
                f"{folds} folds need at least {folds} approved images; this project has {images}"
            )


def _run(env: JobEnv, params: TrainParams, reporter: Reporter) -> dict[str, Any]:
    from medlabel.engines.deep.model_dir import TrainingConfig
    from medlabel.engines.deep.tasks import get_task
    from medlabel.services.models import model_summary, register_model
    from medlabel.services.training_data import training_set

    env.principal()  # the user who started it still has an account
    trainer = get_task(params.task)
    reporter.log(f"reading the reference labels of project {env.project_id}")
    data = training_set(
        env.ctx,
        env.project_id,
        params.task,
        params.labels,
        progress=lambda done, total: reporter.stage_progress("reading labels", done, total),
        note=reporter.log,
    )
    revisions = sorted({int(e.revision) for e in data.examples if e.revision})
    learnt = [n for v, n in data.labels.items() if v or params.task != "seg"]
    reporter.log(f"{len(data.examples)} labelled image(s); {params.task} labels: {learnt}")
    config = TrainingConfig(
        seed=params.seed,
        epochs=params.epochs,
        minutes=params.minutes,
        arch=params.arch,
        onnx=params.onnx,
        threads=params.threads,
        options={**params.options, "name": params.name},
    )
    trained = trainer.train(data, config, reporter)
    reporter.check_cancelled()
    with tempfile.TemporaryDirectory(prefix="medlabel-train-") as tmp:
        directory = Path(tmp) / "model"
        card = trained.save(directory)
        reporter.log(
            f"trained {card.epochs_run} epoch(s) in {card.training_seconds:.0f} s; "
            f"validation {card.validation}"
        )
        row = register_model(
            env.ctx,
            env.project_id,
            directory,
            name=params.name,
            revision_ids=revisions,
            created_by=env.job.created_by,
            job_id=env.job.id,
            activate=params.activate,
        )
    reporter.log(f"registered model {row.name} (version {row.version}, id {row.id})")
    return model_summary(row)


KIND = JobKind(
    name="train",
    params=TrainParams,
    run=_run,
    title="Train a model on the project's approved labels (a new model version)",
    role=ProjectRole.REVIEWER,
    check=_check,
    max_attempts=1,
)
