"""``preannotate``: run a trained model over the project's images without a reference
(or a selection) and store its masks as pending proposals of the user who started the
job, with confidence, uncertainty and an uncertainty map (see
:mod:`medlabel.services.learning`).

Uncertainty (``uncertainty``): ``auto`` (MC dropout when the model has dropout, else
test-time augmentation), ``tta``, ``mc-dropout`` or ``tta+mc-dropout``; the proposals'
info records the method used (``uncertainty_method``, ``uncertainty_samples``) and the
image score's embedding kind (``embedding``: ``model-features`` or ``thumbnail``).
Detection models ignore it (their uncertainty is the entropy of their box scores)."""

from __future__ import annotations

from typing import Any, Literal

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
        default=True,
        description="Segmentation: allow flipped predictions (off: test-time augmentation "
        "is a single prediction and MC dropout runs without flips).",
    )
    uncertainty: Literal["auto", "tta", "mc-dropout", "tta+mc-dropout"] = Field(
        default="auto",
        description="How uncertainty is measured: test-time augmentation (flips), MC "
        "dropout (stochastic passes with dropout on; models trained with dropout), both, "
        "or auto (MC dropout when the model has dropout, else flips).",
    )
    mc_samples: int = Field(
        default=8, ge=2, le=64, description="Stochastic passes of MC dropout per image."
    )
    backend: str = Field(default="auto", pattern="^(auto|torch|onnx)$")
    for_annotators: bool = Field(
        default=False,
        description="Proposals for every annotator and reviewer of the project (each "
        "decides on their own copy), not only for you; needs the reviewer role.",
    )
    task: Literal["seg", "cls", "det"] = Field(
        default="seg", description="Whose active model runs when model_id is not given."
    )
    min_score: float = Field(
        default=0.3, ge=0.0, le=1.0, description="Detection: propose boxes scoring at least this."
    )


def _model_row(ctx: Context, project_id: int, params: PreannotateParams) -> ModelVersion:
    from medlabel.services.models import active_model

    with ctx.db.read() as s:
        if params.model_id is not None:
            row = s.get(ModelVersion, params.model_id)
            if row is None or row.project_id != project_id:
                raise NotFoundError(f"model {params.model_id} is not a model of this project")
        else:
            found = active_model(s, project_id, params.task)
            if found is None:
                what = {"seg": "segmentation", "cls": "classification", "det": "detection"}
                raise InvalidInputError(
                    f"this project has no active {what[params.task]} model: train one (job "
                    "kind 'train') or give model_id"
                )
            row = found
        if row.task not in ("seg", "cls", "det"):
            raise InvalidInputError(
                f"pre-annotation takes seg, cls and det models; {row.id} is {row.task}"
            )
        return row


def card_has_dropout(card: dict[str, Any]) -> bool:
    """Whether a stored model card's network has dropout (MC dropout possible): the
    segmentation networks record ``dropout`` in their parameters (0 before it existed),
    the classification networks always have it, the classical models never."""
    arch = card.get("architecture") or {}
    if arch.get("name") in ("cls-resnet", "cls-feature-head"):
        return float((arch.get("params") or {}).get("dropout", 0.2)) > 0
    return float((arch.get("params") or {}).get("dropout", 0.0)) > 0


def _check(ctx: Context, project_id: int | None, params: PreannotateParams) -> None:
    assert project_id is not None
    row = _model_row(ctx, project_id, params)
    wants_mc = params.uncertainty in ("mc-dropout", "tta+mc-dropout")
    if wants_mc and row.task != "det" and not card_has_dropout(row.card or {}):
        raise InvalidInputError(
            f"uncertainty {params.uncertainty!r} needs a model trained with dropout; model "
            f"{row.name} v{row.version} has none (retrain it, or use 'tta' or 'auto')"
        )
    if row.task != "seg":  # its classes must be labels of the project
        from medlabel.jobs.kinds.preannotate_content import check_labels

        check_labels(ctx, project_id, row)
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
    from medlabel.jobs.kinds.preannotate_seg_batch import SegPredictor
    from medlabel.services.learning import store_prediction, unlabelled_images
    from medlabel.services.model_proposals import record_signals

    if env.job.created_by is None:
        raise InvalidInputError("pre-annotation proposals belong to a user: start it as one")
    ctx = env.ctx
    users = _recipients(ctx, env, params.for_annotators)
    row = _model_row(ctx, env.project_id, params)
    with ctx.db.read() as s:
        ids = params.image_ids or unlabelled_images(s, env.project_id)
    if row.task != "seg":  # classes or boxes, not masks
        from medlabel.jobs.kinds.preannotate_content import run_content_task

        return run_content_task(env, params, reporter, row, users, ids)
    label_names = {
        int(lab["value"]): str(lab["name"]) for lab in row.card.get("labels", []) if lab["value"]
    }
    reporter.log(
        f"model {row.name} v{row.version} on {len(ids)} image(s), for {len(users)} user(s)"
    )
    proposals: list[int] = []
    scores: dict[str, float] = {}
    failed: list[str] = []
    # the model runs in batches: here, or on Ray actors that each load it once; the
    # predictions come back here and this process stores them
    predictor = SegPredictor(
        row.id,
        backend=params.backend,
        tta=params.tta,
        uncertainty=params.uncertainty,
        mc_samples=params.mc_samples,
    )
    with env.map_batches(predictor, ids, batch_size=8, cancelled=reporter.cancelled) as results:
        for n, (image_id, result) in enumerate(results, 1):
            reporter.check_cancelled()
            if isinstance(result, str):  # an image the model cannot take
                failed.append(result)
                reporter.log(result, "warning")
            elif result is not None:  # (None: the image was deleted meanwhile)
                created = store_prediction(ctx, row, users, result, label_names)
                record_signals(
                    ctx, row, result.image_id, created, result.info, result.embedding_kind
                )
                proposals += created
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
