"""Pre-annotation proposals of classification and detection models.

Segmentation models propose masks (:func:`medlabel.services.learning.store_prediction`);
the models of the other tasks propose *content*:

- **classification** (``info["task"] == "cls"``): one proposal per image and user whose
  ``label`` is the most probable class; ``info`` holds every class's ``probabilities``
  (they sum to 1), ``confidence`` (the highest probability) and ``uncertainty`` (the
  normalised entropy of the probabilities, 0 sure .. 1 all classes equally likely). The
  saliency map (Grad-CAM or occlusion: where the evidence for the class lies, 0..1) is
  stored like a segmentation proposal's uncertainty map, as uint8 × 255 in the
  proposal's map blob (``uncertainty_digest``; ``info["map"] == "saliency"``), covering
  the whole image (``origin`` 0, ``shape`` the image's). Its mask is empty. The
  probabilities are the mean of the uncertainty method's samples, recorded with
  ``uncertainty_method``, ``uncertainty_samples`` and ``mutual_information``.
- **detection** (``info["task"] == "det"``): one proposal per box scoring at least the
  job's ``min_score``; ``label`` is the box label, ``info["box"]`` the box in voxel
  coordinates (``start``/``end``, a 2D box spans plane -0.5..0.5, as annotation boxes),
  ``confidence`` its score, ``uncertainty`` the image's score: the mean binary entropy
  (bits) of the scores of every box the model returned (down to its own decoding
  threshold, 0.05 by default), so boxes scored near 0.5 make an image uncertain and an
  image whose candidates are all near 0 or 1 is sure (0 without candidates). The
  proposal's ``origin``/``shape`` are the voxels the box covers; its mask is empty.

Every proposal's ``info["embedding"]`` and the image score's ``embedding_kind`` say
whether the score's embedding is the model's features (``model-features``) or the pixel
thumbnail (``thumbnail``); :func:`record_signals` adds them (and the uncertainty method)
to segmentation proposals stored by :func:`medlabel.services.learning.store_prediction`.

Accepting (:func:`accept_content`, called by :func:`medlabel.services.proposals.decide`)
adds the classes or boxes to the user's annotation as one engine-sourced revision, the
mask unchanged. With ``mode="replace"`` the model's other classes (classification) or
the existing boxes of the accepted labels (detection) are removed first.

Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from medlabel.annotation.content import AnnotationContent, Box, normalize_content
from medlabel.annotation.enums import LabelKind, ProposalState
from medlabel.core.errors import InvalidInputError
from medlabel.io.arrays import decode_array, encode_array
from medlabel.services.blobrefs import unit_of_work
from medlabel.services.context import Context
from medlabel.storage.db.models import Image, ImageScore, Label, ModelVersion, Proposal

#: the tasks whose proposals are content (classes, boxes), not masks
CONTENT_TASKS = ("cls", "det")
#: ``info["map"]`` of a classification proposal: its map blob is a saliency map
SALIENCY = "saliency"


def proposal_task(row: Proposal) -> str:
    """``seg`` (masks, every engine), ``cls`` or ``det`` (pre-annotation of those models)."""
    task = (row.info or {}).get("task", "seg")
    return str(task) if task in CONTENT_TASKS else "seg"


# scores ----------------------------------------------------------------------------------
def normalised_entropy(probabilities: Sequence[float]) -> float:
    """Entropy of a distribution divided by its maximum ``log(n)``: 0 when one class has
    all the probability, 1 when all are equal.

    Raises
    ------
    ValueError
        Fewer than two classes, negative values or a sum of zero.

    Examples
    --------
    >>> normalised_entropy([1.0, 0.0]), normalised_entropy([0.25] * 4)
    (0.0, 1.0)
    """
    p = np.asarray(probabilities, np.float64)
    if p.ndim != 1 or p.size < 2:
        raise ValueError(f"need a distribution over at least 2 classes, got shape {p.shape}")
    if (p < 0).any() or p.sum() <= 0:
        raise ValueError("probabilities must be non-negative with a positive sum")
    p = p / p.sum()
    nz = p[p > 0]
    return float(np.clip(-(nz * np.log(nz)).sum() / math.log(p.size), 0.0, 1.0)) + 0.0


def detection_uncertainty(scores: Sequence[float]) -> float:
    """Mean binary entropy (bits, 0..1) of box scores; 0 without boxes.

    Examples
    --------
    >>> detection_uncertainty([]), detection_uncertainty([0.5]), detection_uncertainty([1.0, 0.0])
    (0.0, 1.0, 0.0)
    """
    s = np.clip(np.asarray(scores, np.float64), 0.0, 1.0)
    if s.size == 0:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(s * np.log2(s) + (1 - s) * np.log2(1 - s))
    return float(np.clip(np.nan_to_num(h, nan=0.0).mean(), 0.0, 1.0))


# results of one image --------------------------------------------------------------------
@dataclass
class ClassResult:
    """A classification model's answer on one image."""

    image_id: int
    #: class name → probability, in the model's class order (sums to 1)
    probabilities: dict[str, float]
    #: saliency of the predicted class, ``(rows, columns)`` in 0..1 on the image's grid
    saliency: np.ndarray
    saliency_method: str
    embedding: list[float]
    seconds: float
    #: ``thumbnail`` or ``model-features`` (see :mod:`medlabel.active.embedding`)
    embedding_kind: str = "thumbnail"
    #: how the uncertainty was measured (method, samples, mutual information), for
    #: the proposal's info
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.probabilities) < 2:
            raise ValueError("a classification result needs at least two classes")
        if self.saliency.ndim != 2:
            raise ValueError(f"saliency must be (rows, columns), got {self.saliency.shape}")

    @property
    def label(self) -> str:
        return max(self.probabilities, key=lambda k: self.probabilities[k])

    @property
    def confidence(self) -> float:
        return float(max(self.probabilities.values()))

    @property
    def uncertainty(self) -> float:
        return normalised_entropy(list(self.probabilities.values()))


@dataclass(frozen=True)
class ScoredBox:
    """A detected box: voxel corners ``(plane, row, column)`` (plane -0.5..0.5)."""

    label: str
    score: float
    start: tuple[float, float, float]
    end: tuple[float, float, float]


@dataclass
class BoxResult:
    """A detection model's answer on one image."""

    image_id: int
    boxes: list[ScoredBox]
    embedding: list[float]
    seconds: float
    #: every score the model returned (for the uncertainty), default: the boxes'
    scores: list[float] = field(default_factory=list)
    #: ``thumbnail`` or ``model-features`` (see :mod:`medlabel.active.embedding`)
    embedding_kind: str = "thumbnail"

    @property
    def uncertainty(self) -> float:
        return detection_uncertainty(self.scores or [b.score for b in self.boxes])


def box_from_pixels(
    label: str, score: float, xyxy: Sequence[float], shape: Sequence[int]
) -> ScoredBox:
    """A box given as ``[x0, y0, x1, y1]`` pixel corners (x along columns, the whole
    image is ``[0, 0, columns, rows]``) in voxel coordinates of a 2D image of
    ``shape`` ``(1, rows, columns)`` (voxel centres at integers).

    Examples
    --------
    >>> box_from_pixels("coin", 0.9, [0, 0, 4, 2], (1, 10, 10)).end
    (0.5, 1.5, 3.5)
    """
    rows, cols = int(shape[1]), int(shape[2])
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    x0, x1 = sorted((min(max(x0, 0.0), cols), min(max(x1, 0.0), cols)))
    y0, y1 = sorted((min(max(y0, 0.0), rows), min(max(y1, 0.0), rows)))
    x0, y0 = min(x0, cols - 0.01), min(y0, rows - 0.01)  # a box of at least 0.01 px
    x1, y1 = max(x1, x0 + 0.01), max(y1, y0 + 0.01)
    return ScoredBox(
        label,
        float(score),
        (-0.5, round(y0 - 0.5, 3), round(x0 - 0.5, 3)),
        (0.5, round(y1 - 0.5, 3), round(x1 - 0.5, 3)),
    )


# storing ---------------------------------------------------------------------------------
def _engine(model: ModelVersion) -> tuple[str, str]:
    return f"model:{model.name}"[:100], f"v{model.version}"


def replace_pending(s: Session, image_id: int, users: Sequence[int], model: ModelVersion) -> None:
    """Delete the users' pending proposals of this model version on the image."""
    engine, version = _engine(model)
    s.execute(
        delete(Proposal).where(
            Proposal.image_id == image_id,
            Proposal.user_id.in_(list(users)),
            Proposal.engine_name == engine,
            Proposal.engine_version == version,
            Proposal.state == ProposalState.PENDING.value,
        )
    )


def store_score(
    s: Session,
    image: Image,
    model: ModelVersion,
    *,
    uncertainty: float,
    confidence: float | None,
    foreground: int,
    embedding: list[float],
    embedding_kind: str = "thumbnail",
) -> None:
    """Record what the model measured on the image (for active learning); ``embedding_kind``
    says whether ``embedding`` is the model's features or the pixel thumbnail."""
    score = s.scalar(
        select(ImageScore).where(ImageScore.image_id == image.id, ImageScore.model_id == model.id)
    )
    if score is None:
        score = ImageScore(project_id=image.project_id, image_id=image.id, model_id=model.id)
        s.add(score)
    score.uncertainty = float(uncertainty)
    score.confidence = confidence
    score.foreground = int(foreground)
    score.embedding = list(embedding)
    score.embedding_kind = str(embedding_kind)


def record_signals(
    ctx: Context,
    model: ModelVersion,
    image_id: int,
    proposal_ids: Sequence[int],
    info: dict[str, Any],
    embedding_kind: str,
) -> None:
    """Add ``info`` (how uncertainty was measured) and ``embedding`` (the embedding's
    kind) to the info of proposals already stored, and the kind to the image's score
    (for pre-annotation paths that store proposals without them)."""
    extra = {**info, "embedding": str(embedding_kind)}
    with ctx.db.write() as s:
        for pid in proposal_ids:
            row = s.get(Proposal, pid)
            if row is not None:
                row.info = {**(row.info or {}), **extra}
        score = s.scalar(
            select(ImageScore).where(
                ImageScore.image_id == image_id, ImageScore.model_id == model.id
            )
        )
        if score is not None:
            score.embedding_kind = str(embedding_kind)


def pending_proposal(
    image: Image,
    user_id: int,
    model: ModelVersion,
    label: str,
    seconds: float,
    origin: Sequence[int],
    shape: Sequence[int],
    mask_digest: str,
    info: dict[str, Any],
    *,
    uncertainty_digest: str | None = None,
    voxels: int = 0,
) -> Proposal:
    """A pre-annotation proposal of ``model`` for one user (not added to a session)."""
    engine, version = _engine(model)
    return Proposal(
        project_id=image.project_id,
        image_id=image.id,
        user_id=user_id,
        engine_name=engine,
        engine_version=version,
        prompt={"preannotation": True, "model_id": model.id, "request": "whole image"},
        label=label,
        seconds=round(seconds, 3),
        origin=[int(v) for v in origin],
        shape=[int(v) for v in shape],
        mask_digest=mask_digest,
        uncertainty_digest=uncertainty_digest,
        voxels=voxels,
        info=info,
        state=ProposalState.PENDING.value,
    )


def _base_info(model: ModelVersion, task: str) -> dict[str, Any]:
    return {
        "task": task,
        "model_id": model.id,
        "model_name": model.name,
        "model_version": model.version,
    }


def store_classification(
    ctx: Context, model: ModelVersion, users: Sequence[int], result: ClassResult
) -> list[int]:
    """Store one image's class proposal for each user (replacing their pending ones of
    the same model version there) and the image's score. Returns the new proposal ids."""
    created: list[int] = []
    with unit_of_work(ctx.db, ctx.blobs) as (s, blobs):
        image = s.get(Image, result.image_id)
        if image is None:  # deleted meanwhile
            return []
        shape = [int(n) for n in image.shape[:3]]
        if list(result.saliency.shape) != shape[1:]:
            raise InvalidInputError(
                f"saliency map {result.saliency.shape} does not match image {image.id} "
                f"of shape {tuple(shape)}"
            )
        replace_pending(s, image.id, users, model)
        heat = np.round(np.clip(result.saliency, 0.0, 1.0) * 255).astype(np.uint8)[np.newaxis]
        map_digest = blobs.put(encode_array(heat, compress=True)).digest
        mask_digest = blobs.put(encode_array(np.zeros(shape, bool), compress=True)).digest
        info = {
            **_base_info(model, "cls"),
            "probabilities": {k: round(float(v), 6) for k, v in result.probabilities.items()},
            "confidence": round(result.confidence, 4),
            "uncertainty": round(result.uncertainty, 4),
            "map": SALIENCY,
            "saliency_method": result.saliency_method,
            **result.info,
            "embedding": result.embedding_kind,
        }
        for user_id in users:
            row = pending_proposal(
                image, user_id, model, result.label, result.seconds, [0, 0, 0], shape,
                mask_digest, info, uncertainty_digest=map_digest,
            )  # fmt: skip
            s.add(row)
            s.flush()
            created.append(row.id)
        store_score(
            s,
            image,
            model,
            uncertainty=result.uncertainty,
            confidence=result.confidence,
            foreground=0,
            embedding=result.embedding,
            embedding_kind=result.embedding_kind,
        )
        s.flush()
    return created


def store_detection(
    ctx: Context, model: ModelVersion, users: Sequence[int], result: BoxResult
) -> list[int]:
    """Store one image's box proposals (one per box and user, replacing their pending
    ones of the same model version there) and the image's score. Returns the new ids."""
    created: list[int] = []
    with unit_of_work(ctx.db, ctx.blobs) as (s, blobs):
        image = s.get(Image, result.image_id)
        if image is None:
            return []
        shape = [int(n) for n in image.shape[:3]]
        replace_pending(s, image.id, users, model)
        unc = result.uncertainty
        for box in result.boxes:
            lo = [max(0, math.floor(a + 0.5)) for a in box.start]
            hi = [
                min(n, max(lo_ + 1, math.ceil(b + 0.5)))
                for lo_, b, n in zip(lo, box.end, shape, strict=True)
            ]
            extent = [h - lo_ for lo_, h in zip(lo, hi, strict=True)]
            mask_digest = blobs.put(encode_array(np.zeros(extent, bool), compress=True)).digest
            info = {
                **_base_info(model, "det"),
                "box": {"start": list(box.start), "end": list(box.end)},
                "confidence": round(box.score, 4),
                "uncertainty": round(unc, 4),
                "boxes": len(result.boxes),
                "embedding": result.embedding_kind,
            }
            for user_id in users:
                row = pending_proposal(
                    image, user_id, model, box.label, result.seconds, lo, extent, mask_digest, info
                )
                s.add(row)
                s.flush()
                created.append(row.id)
        store_score(
            s,
            image,
            model,
            uncertainty=unc,
            confidence=float(np.mean([b.score for b in result.boxes])) if result.boxes else None,
            foreground=len(result.boxes),
            embedding=result.embedding,
            embedding_kind=result.embedding_kind,
        )
        s.flush()
    return created


def check_model_labels(s: Session, project_id: int, task: str, names: Sequence[str]) -> None:
    """The model's classes must be labels of the project of the kind its proposals
    need (classification labels for ``cls``, box labels for ``det``).

    Raises
    ------
    InvalidInputError
        Naming the missing labels and how to add them.
    """
    kind = LabelKind.CLASSIFICATION if task == "cls" else LabelKind.BOX
    labels = {
        lab.name: lab.kind for lab in s.scalars(select(Label).where(Label.project_id == project_id))
    }
    missing = [n for n in names if labels.get(n) != kind.value]
    if missing:
        raise InvalidInputError(
            f"the model's classes {missing} are not {kind.value} labels of this project; "
            f"add them as {kind.value} labels (Labels page) before pre-annotating"
        )


# reading ---------------------------------------------------------------------------------
def proposal_saliency(ctx: Context, row: Proposal) -> np.ndarray:
    """A classification proposal's saliency map: uint8 ``(1, rows, columns)`` (0 no
    evidence .. 255 the strongest), on the image's grid.

    Raises
    ------
    InvalidInputError
        The proposal is not a classification proposal (it has no saliency map).
    """
    if proposal_task(row) != "cls" or row.uncertainty_digest is None:
        raise InvalidInputError(
            f"proposal {row.id} has no saliency map (only classification pre-annotation "
            "proposals do; segmentation proposals have GET /api/proposals/{id}/uncertainty)"
        )
    out = np.asarray(decode_array(ctx.blobs.read_bytes(row.uncertainty_digest)))
    return out.astype(np.uint8, copy=False)


# accepting -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContentChange:
    """The content of the accepted proposals' new revision, and a one-line message."""

    content: dict[str, Any]
    message: str


def merge_content(
    s: Session,
    image: Image,
    parent_content: dict[str, Any] | None,
    rows: Sequence[Proposal],
    replace: bool,
) -> ContentChange:
    """The parent's content with the proposals' classes or boxes added (see the module
    docstring for ``replace``), checked against the project's labels.

    Raises
    ------
    InvalidInputError
        Proposals of several tasks, or a label that is no longer of the right kind.
    """
    tasks = {proposal_task(p) for p in rows}
    if len(tasks) != 1 or not tasks <= set(CONTENT_TASKS):
        raise InvalidInputError(
            "accept classification, detection and mask proposals separately; these mix "
            + ", ".join(sorted(tasks))
        )
    task = tasks.pop()
    content = AnnotationContent.model_validate(parent_content or {})
    if task == "cls":
        classes = list(content.classes)
        if replace:
            model_classes = {str(k) for p in rows for k in (p.info or {}).get("probabilities", {})}
            classes = [c for c in classes if c not in model_classes]
        for p in rows:
            if p.label not in classes:
                classes.append(p.label)
        content.classes = classes
        what = "class " + ", ".join(dict.fromkeys(p.label for p in rows))
    else:
        names = {p.label for p in rows}
        boxes = [b for b in content.boxes if not (replace and b.label in names)]
        for p in rows:
            box = (p.info or {}).get("box") or {}
            boxes.append(Box(label=p.label, start=tuple(box["start"]), end=tuple(box["end"])))
        content.boxes = boxes
        what = f"{len(rows)} box(es) " + ", ".join(sorted(names))
    labels = list(s.scalars(select(Label).where(Label.project_id == image.project_id)))
    kinds = {lab.name: LabelKind(lab.kind) for lab in labels}
    checked = normalize_content(
        content, labels=kinds, shape=image.shape, affine=np.asarray(image.affine)
    )
    return ContentChange(checked.model_dump(), what)


__all__ = [
    "CONTENT_TASKS",
    "SALIENCY",
    "BoxResult",
    "ClassResult",
    "ContentChange",
    "ScoredBox",
    "box_from_pixels",
    "check_model_labels",
    "detection_uncertainty",
    "merge_content",
    "normalised_entropy",
    "proposal_saliency",
    "proposal_task",
    "record_signals",
    "store_classification",
    "store_detection",
]
