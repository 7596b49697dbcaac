"""The project side of the learning loop: pre-annotation results stored as proposals
and image scores (training data from the reference labels is
:mod:`medlabel.services.training_data`).

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from medlabel.active.embedding import embedding as embedding  # re-exported for the jobs
from medlabel.core.errors import InvalidInputError
from medlabel.io.arrays import decode_array, encode_array
from medlabel.services.blobrefs import unit_of_work
from medlabel.services.context import Context
from medlabel.services.model_proposals import pending_proposal, replace_pending, store_score
from medlabel.services.review import ReferenceSource, reference_revisions
from medlabel.services.training_data import image_volume as image_volume  # for the jobs
from medlabel.storage.db.models import Image, ModelVersion, Proposal

log = logging.getLogger(__name__)


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
