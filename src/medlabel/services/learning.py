"""The project side of the learning loop: training data from the reference labels, and
pre-annotation results stored as proposals and image scores.

- :func:`training_set` turns the project's *reference* labels (per image: the approved
  consensus, else the first approved reading — see
  :func:`medlabel.services.review.reference_revisions`) into the trainers' in-memory
  :class:`~medlabel.engines.deep.tasks.TrainingSet`, recording the revision of each example.
- :func:`store_prediction` keeps one model prediction of an image: one pending
  :class:`~medlabel.storage.db.models.Proposal` per predicted label for the user who ran
  the job (shown in the workspace's proposal overlay to accept, edit or reject), with the
  model's name and version as the engine, its confidence and uncertainty in ``info`` and
  the cropped uncertainty map as a blob; and one
  :class:`~medlabel.storage.db.models.ImageScore` for active learning.

Nothing here imports torch (predictions arrive as arrays).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from medlabel.active.embedding import embedding as embedding  # re-exported for the jobs
from medlabel.annotation.enums import LabelKind
from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep.model_dir import TaskKind
from medlabel.engines.deep.tasks import Example, TrainingSet
from medlabel.imaging.volume import Volume
from medlabel.io.arrays import decode_array, encode_array
from medlabel.services.blobrefs import unit_of_work
from medlabel.services.context import Context
from medlabel.services.images import pixels
from medlabel.services.model_proposals import pending_proposal, replace_pending, store_score
from medlabel.services.review import ReferenceSource, reference_revisions
from medlabel.storage.db.models import Image, Label, ModelVersion, Proposal

log = logging.getLogger(__name__)


# training data ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReferenceItem:
    """An image with a reference mask, as found (before pixels are read)."""

    image_id: int
    revision_id: int
    mask_digest: str


def mask_labels(s: Session, project_id: int, names: Sequence[str] = ()) -> dict[int, str]:
    """Mask label values and names of a project (all, or those named).

    Raises
    ------
    InvalidInputError
        A name that is not a mask label of the project, or no mask label at all.
    """
    rows = list(s.scalars(select(Label).where(Label.project_id == project_id)))
    masks = {
        lab.name: int(lab.value)
        for lab in rows
        if lab.kind == LabelKind.MASK.value and lab.value is not None
    }
    if not masks:
        raise InvalidInputError("the project has no mask label; add one before training")
    unknown = [n for n in names if n not in masks]
    if unknown:
        raise InvalidInputError(
            f"unknown mask label(s) {unknown}; this project's mask labels: {sorted(masks)}"
        )
    chosen = list(names) or sorted(masks)
    return {masks[n]: n for n in chosen}


def reference_items(s: Session, project_id: int) -> list[ReferenceItem]:
    """Images of the project whose reference has a mask, in image order (no permission
    check). With several approved readings and no consensus, the first reader's is used."""
    out: list[ReferenceItem] = []
    for image_id in s.scalars(
        select(Image.id).where(Image.project_id == project_id).order_by(Image.id)
    ):
        ref = reference_revisions(s, image_id)
        rev = next((r for r in ref.revisions if r.mask_digest), None)
        if rev is not None and rev.mask_digest is not None:
            out.append(ReferenceItem(int(image_id), rev.id, rev.mask_digest))
    return out


def image_volume(ctx: Context, image: Image) -> Volume:
    """The stored image as a :class:`Volume` with its geometry."""
    return Volume(
        pixels(ctx, image),
        np.asarray(image.affine),
        modality=image.modality,
        geometry_known=image.geometry_known,
    )


def training_set(
    ctx: Context,
    project_id: int,
    labels: Sequence[str] = (),
    *,
    progress: Callable[[int, int], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> TrainingSet:
    """The project's reference masks as a segmentation training set.

    Only the chosen labels are kept (other label values become background); images
    whose reference has none of them are left out. A network takes one kind of input,
    so when the project mixes 2D and 3D images or greyscale and colour, the largest
    group is kept and the others are named through ``note``. Example names are
    ``image-<id>`` and each records its revision id.

    Raises
    ------
    InvalidInputError
        Unknown labels, or fewer than two images with a labelled reference.
    """
    with ctx.db.read() as s:
        names = mask_labels(s, project_id, labels)
        items = reference_items(s, project_id)
        images = {i.id: i for i in s.scalars(select(Image).where(Image.project_id == project_id))}
    keep = np.zeros(65536, np.uint8)
    for v in names:
        keep[v] = v
    examples: list[Example] = []
    for n, item in enumerate(items, 1):
        raw = ctx.blobs.read_bytes(item.mask_digest)
        mask = keep[np.asarray(decode_array(raw)).astype(np.int64)]
        if mask.any():
            image = images[item.image_id]
            vol = image_volume(ctx, image)
            examples.append(
                Example(f"image-{item.image_id}", vol, mask, revision=str(item.revision_id))
            )
        if progress is not None:
            progress(n, len(items))
    groups: dict[tuple[bool, int], list[Example]] = {}
    for e in examples:
        groups.setdefault((e.image.is_2d, e.image.channels), []).append(e)
    if len(groups) > 1:
        (is_2d, channels), examples = max(groups.items(), key=lambda kv: len(kv[1]))
        left = [e.name for g in groups.values() for e in g if e not in examples]
        if note is not None:
            kind = f"{'2D' if is_2d else '3D'} {'colour' if channels > 1 else 'greyscale'}"
            note(f"training on the {len(examples)} {kind} image(s); left out: {', '.join(left)}")
    if len(examples) < 2:
        raise InvalidInputError(
            f"training needs at least 2 images whose reference (approved labels) contains "
            f"{', '.join(names.values())}; this project has {len(examples)}"
        )
    return TrainingSet(
        TaskKind.SEG,
        examples,
        {0: "background", **names},
        source=f"project:{project_id}",
    )


def check_trainable(ctx: Context, project_id: int, labels: Sequence[str] = ()) -> int:
    """How many images have a labelled reference; refuses fewer than two (cheap: masks
    are not read)."""
    with ctx.db.read() as s:
        names = mask_labels(s, project_id, labels)
        items = reference_items(s, project_id)
    if len(items) < 2:
        raise InvalidInputError(
            f"training needs at least 2 images with approved labels ({', '.join(names.values())}); "
            f"this project has {len(items)}: approve more annotations first"
        )
    return len(items)


# pre-annotation --------------------------------------------------------------------------
def unlabelled_images(s: Session, project_id: int) -> list[int]:
    """Images of the project without a reference, in image order."""
    ids = list(s.scalars(select(Image.id).where(Image.project_id == project_id).order_by(Image.id)))
    return [i for i in ids if reference_revisions(s, i).source == ReferenceSource.NONE]


@dataclass
class ImagePrediction:
    """What pre-annotation found on one image (arrays on the image's grid)."""

    image_id: int
    labels: np.ndarray
    #: normalised entropy 0..1 per voxel
    entropy: np.ndarray
    #: max class probability per voxel
    max_probability: np.ndarray
    uncertainty: float
    disagreement: float
    samples: int
    embedding: list[float]
    seconds: float


def store_prediction(
    ctx: Context,
    model: ModelVersion,
    user_ids: Sequence[int],
    pred: ImagePrediction,
    label_names: dict[int, str],
) -> list[int]:
    """Store one image's prediction: for each user, a pending proposal per predicted
    label (replacing their pending proposals of the same model version there; proposals
    are personal, so each user decides on their own copy — the masks are stored once),
    and the image's score. Returns the new proposal ids."""
    fg = pred.labels > 0
    confidence = float(pred.max_probability[fg].mean()) if fg.any() else None
    created: list[int] = []
    with unit_of_work(ctx.db, ctx.blobs) as (s, blobs):
        image = s.get(Image, pred.image_id)
        if image is None:  # deleted meanwhile
            return []
        replace_pending(s, pred.image_id, user_ids, model)
        for value, name in sorted(label_names.items()):
            mask = pred.labels == value
            if not mask.any():
                continue
            box = tuple(slice(int(idx.min()), int(idx.max()) + 1) for idx in np.nonzero(mask))
            crop = mask[box]
            unc = np.round(pred.entropy[box] * 255).astype(np.uint8)
            label_conf = float(pred.max_probability[mask].mean())
            label_unc = float(pred.entropy[mask].mean())
            mask_digest = blobs.put(encode_array(crop, compress=True)).digest
            unc_digest = blobs.put(encode_array(unc, compress=True)).digest
            for user_id in user_ids:
                info = {
                    "model_id": model.id,
                    "model_version": model.version,
                    "confidence": round(label_conf, 4),
                    "label_uncertainty": round(label_unc, 4),
                    "uncertainty": round(pred.uncertainty, 4),
                    "disagreement": round(pred.disagreement, 4),
                    "samples": pred.samples,
                }
                row = pending_proposal(
                    image, user_id, model, name, pred.seconds, [b.start for b in box],
                    crop.shape, mask_digest, info, uncertainty_digest=unc_digest,
                    voxels=int(crop.sum()),
                )  # fmt: skip
                s.add(row)
                s.flush()
                created.append(row.id)
        store_score(
            s,
            image,
            model,
            uncertainty=pred.uncertainty,
            confidence=confidence,
            foreground=int(fg.sum()),
            embedding=list(pred.embedding),
        )
        s.flush()
    return created


def proposal_uncertainty(ctx: Context, row: Proposal) -> np.ndarray:
    """The proposal's cropped uncertainty map (uint8, 0 sure .. 255 unsure, shape
    ``row.shape``).

    Raises
    ------
    InvalidInputError
        The proposal has no uncertainty map (it was not made by pre-annotation).
    """
    if row.uncertainty_digest is None or (row.info or {}).get("task") in ("cls", "det"):
        raise InvalidInputError(
            f"proposal {row.id} has no uncertainty map (only segmentation pre-annotation "
            "proposals do; classification proposals have GET /api/proposals/{id}/saliency)"
        )
    out: np.ndarray = np.asarray(decode_array(ctx.blobs.read_bytes(row.uncertainty_digest)))
    return out.astype(np.uint8, copy=False)


def info_of(pred: ImagePrediction) -> dict[str, Any]:
    """A log-friendly summary of one prediction."""
    return {
        "image_id": pred.image_id,
        "uncertainty": round(pred.uncertainty, 4),
        "foreground": int((pred.labels > 0).sum()),
    }
