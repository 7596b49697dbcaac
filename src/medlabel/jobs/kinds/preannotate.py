"""``preannotate``: run a trained model over the project's images without a reference
(or a selection) and store its masks as pending proposals of the user who started the
job, with confidence, uncertainty and an uncertainty map (see
:mod:`medlabel.services.learning`)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.jobs.reporter import Reporter
from medlabel.jobs.spec import JobEnv, JobKind
from medlabel.security.roles import ProjectRole
from medlabel.services.context import Context
from medlabel.storage.db.models import Image, ModelVersion


class PreannotateParams(BaseModel):
    """Which model on which images."""

    model_id: int | None = Field(
        default=None, description="A model version of the project; default: the active seg model."
    )
    image_ids: list[int] | None = Field(
        default=None, max_length=100_000, description="Default: every image without a reference."
    )
    tta: bool = Field(
        default=True, description="Average flipped predictions (uncertainty from 3 samples)."
    )
    backend: str = Field(default="auto", pattern="^(auto|torch|onnx)$")
    for_annotators: bool = Field(
        default=False,
        description="Proposals for every annotator and reviewer of the project (each "
        "decides on their own copy), not only for you; needs the reviewer role.",
    )


def _model_row(ctx: Context, project_id: int, params: PreannotateParams) -> ModelVersion:
    from medlabel.services.models import active_model

    with ctx.db.read() as s:
        if params.model_id is not None:
            row = s.get(ModelVersion, params.model_id)
            if row is None or row.project_id != project_id:
                raise NotFoundError(f"model {params.model_id} is not a model of this project")
        else:
            found = active_model(s, project_id, "seg")
            if found is None:
                raise InvalidInputError(
                    "this project has no active segmentation model: train one (job kind "
                    "'train') or give model_id"
                )
            row = found
        if row.task != "seg":
            raise InvalidInputError(
                f"pre-annotation takes segmentation models; {row.id} is {row.task}"
            )
        return row


def _check(ctx: Context, project_id: int | None, params: PreannotateParams) -> None:
    assert project_id is not None
    _model_row(ctx, project_id, params)
    if params.image_ids:
        with ctx.db.read() as s:
            from sqlalchemy import select

            found = set(
                s.scalars(
                    select(Image.id).where(
                        Image.project_id == project_id, Image.id.in_(params.image_ids)
                    )
                )
            )
        missing = sorted(set(params.image_ids) - found)[:10]
        if missing:
            raise InvalidInputError(f"images {missing} are not images of this project")


def _recipients(ctx: Context, env: JobEnv, for_annotators: bool) -> list[int]:
    """Whom the proposals are for: the job's user, or every annotator and reviewer of
    the project (the job's user must be a reviewer for that)."""
    from sqlalchemy import select

    from medlabel.core.errors import PermissionDeniedError
    from medlabel.services.access import project_role
    from medlabel.storage.db.models import ProjectMember

    actor = env.principal()
    assert actor is not None and env.job.created_by is not None
    if not for_annotators:
        return [env.job.created_by]
    with ctx.db.read() as s:
        role = project_role(s, actor, env.project_id)
        if role is None or not role.at_least(ProjectRole.REVIEWER):
            raise PermissionDeniedError(
                "only reviewers pre-annotate for the whole team; leave for_annotators off"
            )
        members = s.scalars(
            select(ProjectMember.user_id).where(
                ProjectMember.project_id == env.project_id,
                ProjectMember.role.in_([ProjectRole.ANNOTATOR.value, ProjectRole.REVIEWER.value]),
            )
        )
        return sorted({env.job.created_by, *(int(u) for u in members)})


def _run(env: JobEnv, params: PreannotateParams, reporter: Reporter) -> dict[str, Any]:
    from medlabel.engines.deep.tasks import get_task
    from medlabel.engines.deep.uncertainty import predict_with_uncertainty
    from medlabel.services.learning import (
        ImagePrediction,
        embedding,
        image_volume,
        store_prediction,
        unlabelled_images,
    )
    from medlabel.services.models import extract_model

    if env.job.created_by is None:
        raise InvalidInputError("pre-annotation proposals belong to a user: start it as one")
    ctx = env.ctx
    users = _recipients(ctx, env, params.for_annotators)
    row = _model_row(ctx, env.project_id, params)
    with ctx.db.read() as s:
        ids = params.image_ids or unlabelled_images(s, env.project_id)
    label_names = {
        int(lab["value"]): str(lab["name"]) for lab in row.card.get("labels", []) if lab["value"]
    }
    reporter.log(
        f"model {row.name} v{row.version} on {len(ids)} image(s), for {len(users)} user(s)"
    )
    proposals: list[int] = []
    scores: dict[str, float] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="medlabel-model-") as tmp:
        directory = extract_model(ctx, row, Path(tmp) / "model")
        from medlabel.engines.deep.model_dir import ModelCard

        card = ModelCard.read(directory)
        model = get_task(card.task).load(directory, card, backend=params.backend)
        for n, image_id in enumerate(ids, 1):
            reporter.check_cancelled()
            with ctx.db.read() as s:
                image = s.get(Image, image_id)
            if image is None:
                continue
            started = time.perf_counter()
            volume = image_volume(ctx, image)
            any_channels = card.architecture.name == "medsam-decoder"  # it converts to grey
            if (card.input.dims == 2) != volume.is_2d or (
                not any_channels and card.input.channels != volume.channels
            ):
                want = f"{card.input.dims}D with {card.input.channels} channel(s)"
                failed.append(f"image {image_id}: the model takes {want} images")
                reporter.log(failed[-1], "warning")
                continue
            try:
                pred = predict_with_uncertainty(model, volume, tta=params.tta)
            except InvalidInputError as exc:  # an image the model cannot take (2D/3D...)
                failed.append(f"image {image_id}: {exc.message}")
                reporter.log(failed[-1], "warning")
                continue
            fg = pred.labels > 0
            result = ImagePrediction(
                image_id=image_id,
                labels=pred.labels,
                entropy=pred.entropy,
                max_probability=pred.probabilities.max(axis=0),
                uncertainty=pred.uncertainty(),
                disagreement=float(pred.disagreement[fg].mean()) if fg.any() else 0.0,
                samples=pred.samples,
                embedding=embedding(volume),
                seconds=time.perf_counter() - started,
            )
            proposals += store_prediction(ctx, row, users, result, label_names)
            scores[str(image_id)] = round(result.uncertainty, 4)
            reporter.progress(n, len(ids), "pre-annotating")
    reporter.log(f"{len(proposals)} proposal(s) on {len(scores)} image(s)")
    return {
        "model_id": row.id,
        "images": len(scores),
        "proposals": len(proposals),
        "failed": failed[:20],
        "uncertainty": scores if len(scores) <= 200 else {},
    }


KIND = JobKind(
    name="preannotate",
    params=PreannotateParams,
    run=_run,
    title="Pre-annotate images with a trained model (proposals to accept or reject)",
    role=ProjectRole.ANNOTATOR,
    check=_check,
    resumable=True,  # a re-run replaces the pending proposals of the same model version
)
