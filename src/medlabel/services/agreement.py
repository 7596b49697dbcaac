"""Agreement between the readers of a project's images, per image and for the project.

Readings are the head revisions of reader annotations that are submitted or approved
(work still in progress is not compared unless asked). Only reviewers see agreement: it
shows every reader's work.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from medlabel.annotation.enums import AnnotationKind, AnnotationState, LabelKind
from medlabel.core.errors import NotFoundError
from medlabel.quality.agreement import (
    ClassAgreement,
    PairRow,
    Reading,
    box_pairs,
    class_agreement,
    mask_against_reference,
    mask_pairs,
)
from medlabel.quality.voting import majority_vote
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, require_project
from medlabel.services.annotations import load_mask
from medlabel.services.context import Context
from medlabel.storage.db.models import Annotation, Image, Label, Revision, User

#: states whose head revision counts as a finished reading
FINISHED = (AnnotationState.SUBMITTED.value, AnnotationState.APPROVED.value)


@dataclass(frozen=True)
class ReaderInfo:
    annotation_id: int
    revision_id: int
    reader: str
    state: str


@dataclass
class ImageAgreement:
    """Agreement of the readers of one image (and of each reader with the consensus)."""

    image_id: int
    readers: list[ReaderInfo]
    masks: list[PairRow] = field(default_factory=list)
    boxes: list[PairRow] = field(default_factory=list)
    classes: dict[str, list[str]] = field(default_factory=dict)
    consensus: ReaderInfo | None = None
    against_consensus: list[PairRow] = field(default_factory=list)


def spacing_of(image: Image) -> tuple[float, float, float]:
    """Voxel size ``(plane, row, column)`` in mm from the image's affine."""
    a = np.asarray(image.affine, dtype=np.float64)[:3, :3]
    sp = np.linalg.norm(a, axis=0)
    return (float(sp[0]), float(sp[1]), float(sp[2]))


def _labels(s: Session, project_id: int, kind: LabelKind) -> list[Label]:
    return list(
        s.scalars(
            select(Label)
            .where(Label.project_id == project_id, Label.kind == kind.value)
            .order_by(Label.id)
        )
    )


def readings_of(
    s: Session, image_id: int, states: Iterable[str]
) -> tuple[list[tuple[ReaderInfo, Revision]], tuple[ReaderInfo, Revision] | None]:
    """Finished reader annotations of an image, and the consensus annotation if any."""
    anns = list(
        s.scalars(
            select(Annotation)
            .where(Annotation.image_id == image_id, Annotation.head_revision_id.is_not(None))
            .order_by(Annotation.id)
        )
    )
    readers: list[tuple[ReaderInfo, Revision]] = []
    consensus = None
    wanted = set(states)
    for ann in anns:
        rev = s.get(Revision, ann.head_revision_id)
        if rev is None:
            continue
        if ann.kind == AnnotationKind.CONSENSUS.value:
            consensus = (ReaderInfo(ann.id, rev.id, "consensus", ann.state), rev)
        elif ann.state in wanted:
            owner = s.get(User, ann.owner_id) if ann.owner_id else None
            name = owner.username if owner else f"reader {ann.id}"
            readers.append((ReaderInfo(ann.id, rev.id, name, ann.state), rev))
    return readers, consensus


def _reading(ctx: Context, info: ReaderInfo, rev: Revision) -> Reading:
    content = rev.content or {}
    boxes: dict[str, list[list[float]]] = defaultdict(list)
    for box in content.get("boxes", []):
        boxes[box["label"]].append([*box["start"], *box["end"]])
    return Reading(
        info.reader,
        load_mask(ctx, rev),
        frozenset(content.get("classes", [])),
        {k: np.asarray(v, dtype=np.float64) for k, v in boxes.items()},
    )


def image_agreement(
    ctx: Context,
    actor: Principal,
    image_id: int,
    *,
    include_drafts: bool = False,
    tolerance_mm: float = 1.0,
) -> ImageAgreement:
    """Pairwise agreement of the readers of one image, per label.

    Raises
    ------
    NotFoundError
        No such image (or not visible to the actor).
    PermissionDeniedError
        The actor is not a reviewer of the image's project.
    """
    states = (*FINISHED, AnnotationState.DRAFT.value, AnnotationState.REJECTED.value)
    with ctx.db.read() as s:
        image = s.get(Image, image_id)
        if image is None:
            raise NotFoundError(f"image {image_id} not found")
        require_project(s, actor, image.project_id, ProjectRole.REVIEWER)
        readers, consensus = readings_of(s, image_id, states if include_drafts else FINISHED)
        mask_labels = {lab.value: lab.name for lab in _labels(s, image.project_id, LabelKind.MASK)}
        spacing = spacing_of(image)
    readings = [_reading(ctx, info, rev) for info, rev in readers]
    return _compare(ctx, image_id, readers, readings, consensus, mask_labels, spacing, tolerance_mm)


def _compare(
    ctx: Context,
    image_id: int,
    readers: list[tuple[ReaderInfo, Revision]],
    readings: list[Reading],
    consensus: tuple[ReaderInfo, Revision] | None,
    mask_labels: dict[int | None, str],
    spacing: tuple[float, float, float],
    tolerance_mm: float,
) -> ImageAgreement:
    labels = {int(v): n for v, n in mask_labels.items() if v is not None}
    out = ImageAgreement(image_id, [info for info, _ in readers])
    out.classes = {r.reader: sorted(r.classes) for r in readings}
    if len(readings) >= 2:
        out.masks = mask_pairs(readings, labels, spacing, tolerance_mm=tolerance_mm)
        out.boxes = box_pairs(readings)
    if consensus is not None:
        out.consensus = consensus[0]
        ref = load_mask(ctx, consensus[1])
        if ref is not None and readings:
            out.against_consensus = mask_against_reference(
                readings, ref, labels, spacing, tolerance_mm=tolerance_mm
            )
    return out


@dataclass
class ProjectAgreement:
    """The project's agreement dashboard.

    ``pairs`` and ``readers`` summarise mask metrics per label over the images with at
    least two finished readings; ``images`` ranks those images worst-first (lowest mean
    pairwise Dice) for adjudication.
    """

    project_id: int
    images_compared: int
    pairs: list[dict[str, Any]]
    readers: list[dict[str, Any]]
    boxes: list[dict[str, Any]]
    classes: list[ClassAgreement]
    images: list[dict[str, Any]]


def _summary(values: list[float]) -> dict[str, float | None]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"mean": None, "median": None, "min": None, "max": None}
    arr = np.asarray(finite)
    return {
        "mean": float(arr.mean()),
        "median": float(np.median(arr)),
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def project_agreement(
    ctx: Context, actor: Principal, project_id: int, *, tolerance_mm: float = 1.0
) -> ProjectAgreement:
    """Agreement over all images of a project that have two or more finished readings.

    Each reader is also compared with a reference: the image's consensus annotation if
    one was formed, else the majority vote of its readers (computed, not stored).
    """
    with ctx.db.read() as s:
        require_project(s, actor, project_id, ProjectRole.REVIEWER)
        mask_labels = {lab.value: lab.name for lab in _labels(s, project_id, LabelKind.MASK)}
        images = list(
            s.scalars(select(Image).where(Image.project_id == project_id).order_by(Image.id))
        )
        todo = []
        for image in images:
            readers, consensus = readings_of(s, image.id, FINISHED)
            if len(readers) >= 2:
                todo.append((image.id, image.name, spacing_of(image), readers, consensus))
    pair_values: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    reader_values: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    box_values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    class_tables: list[dict[str, frozenset[str]]] = []
    ranked = []
    labels = {int(v): n for v, n in mask_labels.items() if v is not None}
    for image_id, name, spacing, readers, consensus in todo:
        readings = [_reading(ctx, info, rev) for info, rev in readers]
        result = _compare(
            ctx, image_id, readers, readings, consensus, mask_labels, spacing, tolerance_mm
        )
        class_tables.append({r.reader: r.classes for r in readings})
        if not result.against_consensus and all(r.labelmap is not None for r in readings):
            vote = majority_vote([r.labelmap for r in readings]).labelmap  # type: ignore[misc]
            result.against_consensus = mask_against_reference(
                readings, vote, labels, spacing, tolerance_mm=tolerance_mm
            )
        for row in result.masks:
            key = (row.label, *sorted((row.a, row.b)))
            for metric, value in row.metrics.items():
                pair_values[key][metric].append(value)  # type: ignore[index]
        for row in result.against_consensus:
            for metric, value in row.metrics.items():
                reader_values[(row.label, row.a)][metric].append(value)
        for row in result.boxes:
            box_values[(row.label, *sorted((row.a, row.b)))].append(row.metrics["f1"])  # type: ignore[index]
        dices = [row.metrics["dice"] for row in result.masks]
        ranked.append(
            {
                "image_id": image_id,
                "name": name,
                "readers": [r.reader for r in result.readers],
                "mean_dice": float(np.mean(dices)) if dices else None,
                "min_dice": float(np.min(dices)) if dices else None,
                "has_consensus": consensus is not None,
            }
        )
    ranked.sort(key=lambda r: (r["mean_dice"] is None, r["mean_dice"] or 0.0))
    pairs = [
        {
            "label": label,
            "reader_a": a,
            "reader_b": b,
            "images": len(values["dice"]),
            **{metric: _summary(v) for metric, v in values.items()},
        }
        for (label, a, b), values in sorted(pair_values.items())
    ]
    reader_rows = [
        {
            "label": label,
            "reader": reader,
            "images": len(values["dice"]),
            **{metric: _summary(v) for metric, v in values.items()},
        }
        for (label, reader), values in sorted(reader_values.items())
    ]
    box_rows = [
        {"label": label, "reader_a": a, "reader_b": b, "images": len(v), "f1": _summary(v)}
        for (label, a, b), v in sorted(box_values.items())
    ]
    return ProjectAgreement(
        project_id,
        len(todo),
        pairs,
        reader_rows,
        box_rows,
        class_agreement(class_tables),
        ranked,
    )
