"""Consensus of an image's readers, stored as the image's consensus annotation.

A reviewer forms the consensus from the finished readings (STAPLE or majority vote for
masks, a majority vote for classes, clustering for boxes and points), then adjudicates:
the disagreement regions are shown, the reviewer edits the consensus like any annotation
(each edit a human revision whose parent is the computed one) and approves it; the
approved consensus is the image's reference. The computed revision records its method,
its inputs (annotation and revision ids) and the readers' estimated performance.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from sqlalchemy import select

from medlabel import __version__
from medlabel.annotation.content import AnnotationContent, Box, Point
from medlabel.annotation.enums import AnnotationKind
from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.quality.clusters import cluster_boxes, cluster_points
from medlabel.quality.staple import multilabel_staple
from medlabel.quality.voting import disagreement, majority_vote, vote_classes
from medlabel.security.roles import ProjectRole
from medlabel.services import annotations as annotations_svc
from medlabel.services.access import Principal, require_project
from medlabel.services.agreement import FINISHED, ReaderInfo, readings_of
from medlabel.services.annotations import EngineInfo, load_mask
from medlabel.services.context import Context
from medlabel.storage.db.models import Annotation, Image, Label, Revision


class ConsensusMethod(StrEnum):
    """How reader masks are combined."""

    STAPLE = "staple"
    MAJORITY = "majority"


@dataclass(frozen=True)
class ConsensusResult:
    """The stored consensus and what went into it."""

    view: annotations_svc.AnnotationView
    readers: list[ReaderInfo]
    disagreement_voxels: int
    tied_voxels: int
    performance: dict[str, dict[str, float]]


def _inputs(
    ctx: Context, actor: Principal, image_id: int, annotation_ids: list[int] | None
) -> tuple[Image, list[tuple[ReaderInfo, Revision]], Annotation | None, list[Label]]:
    with ctx.db.read() as s:
        image = s.get(Image, image_id)
        if image is None:
            raise NotFoundError(f"image {image_id} not found")
        require_project(s, actor, image.project_id, ProjectRole.REVIEWER)
        readers, _ = readings_of(s, image_id, FINISHED)
        if annotation_ids is not None:
            known = {info.annotation_id for info, _ in readers}
            unknown = sorted(set(annotation_ids) - known)
            if unknown:
                raise InvalidInputError(
                    f"annotations {unknown} are not submitted or approved readings of image "
                    f"{image_id}; readings available: {sorted(known)}"
                )
            readers = [(i, r) for i, r in readers if i.annotation_id in set(annotation_ids)]
        if len(readers) < 2:
            raise InvalidInputError(
                f"a consensus needs at least two submitted or approved readings; image "
                f"{image_id} has {len(readers)}"
            )
        existing = s.scalar(
            select(Annotation).where(
                Annotation.image_id == image_id,
                Annotation.kind == AnnotationKind.CONSENSUS.value,
            )
        )
        labels = list(s.scalars(select(Label).where(Label.project_id == image.project_id)))
        s.expunge_all()
    return image, readers, existing, labels


def _mask_consensus(
    masks: list[np.ndarray], values: list[int], method: ConsensusMethod, names: list[str]
) -> tuple[np.ndarray, int, dict[str, dict[str, float]]]:
    if method == ConsensusMethod.STAPLE:
        result = multilabel_staple(masks, labels=values)
        diag = np.diagonal(result.confusion, axis1=1, axis2=2)  # readers x labels
        performance = {
            name: {f"label_{v}": float(diag[i, j]) for j, v in enumerate(result.labels)}
            for i, name in enumerate(names)
        }
        return result.consensus(), 0, performance
    vote = majority_vote(masks)
    return vote.labelmap, int(vote.tied.sum()), {}


def build_consensus(
    ctx: Context,
    actor: Principal,
    image_id: int,
    *,
    method: ConsensusMethod | str = ConsensusMethod.STAPLE,
    annotation_ids: list[int] | None = None,
    base_version: int | None = None,
    point_radius_mm: float = 5.0,
) -> ConsensusResult:
    """Combine the finished readings of an image into its consensus annotation.

    Parameters
    ----------
    method
        ``staple`` or ``majority`` for masks (ties of a majority vote go to background
        and are counted in ``tied_voxels``).
    annotation_ids
        The readings to combine (default: every submitted or approved reading).
    base_version
        Required when the image already has a consensus: its current version, so a
        recomputation cannot overwrite an adjudication made meanwhile.
    point_radius_mm
        Landmarks of two readers closer than this mark the same spot.

    Raises
    ------
    InvalidInputError
        Unknown method, fewer than two readings, or readings that are not of this image.
    PermissionDeniedError
        The actor is not a reviewer of the project.
    ConflictError
        ``base_version`` is stale.
    """
    try:
        method = ConsensusMethod(method)
    except ValueError:
        raise InvalidInputError(
            f"unknown consensus method {method!r}; use one of {[m.value for m in ConsensusMethod]}"
        ) from None
    image, readers, existing, labels = _inputs(ctx, actor, image_id, annotation_ids)
    names = [info.reader for info, _ in readers]
    contents = [AnnotationContent.model_validate(rev.content or {}) for _, rev in readers]
    shape = tuple(image.shape)
    loaded = [load_mask(ctx, rev) for _, rev in readers]
    mask: np.ndarray | None = None
    tied, n_disagree = 0, 0
    performance: dict[str, dict[str, float]] = {}
    if any(m is not None for m in loaded):
        masks = [m if m is not None else np.zeros(shape, np.uint8) for m in loaded]
        values = sorted(
            {0}
            | {int(lab.value) for lab in labels if lab.value is not None}
            | {int(v) for m in masks for v in np.unique(m)}
        )
        mask, tied, performance = _mask_consensus(masks, values, method, names)
        n_disagree = int(disagreement(masks).sum())
        mask = mask.astype(np.uint8 if max(values) < 256 else np.uint16)
    content = AnnotationContent(
        classes=[v.name for v in vote_classes([c.classes for c in contents]) if v.chosen],
        boxes=_consensus_boxes(contents),
        points=_consensus_points(contents, point_radius_mm),
    )
    prompt: dict[str, Any] = {
        "method": method.value,
        "inputs": [
            {"annotation_id": i.annotation_id, "revision_id": i.revision_id, "reader": i.reader}
            for i, _ in readers
        ],
        "disagreement_voxels": n_disagree,
        "tied_voxels": tied,
        "reader_performance": performance,
        "point_radius_mm": point_radius_mm,
    }
    engine = EngineInfo(f"consensus.{method.value}", __version__, prompt)
    message = f"consensus of {len(readers)} readings ({method.value})"
    view = annotations_svc.save_annotation(
        ctx,
        actor,
        image_id,
        content=content,
        mask=mask,
        annotation_id=existing.id if existing else None,
        base_version=base_version,
        message=message,
        engine=engine,
        kind=AnnotationKind.CONSENSUS,
    )
    return ConsensusResult(view, [i for i, _ in readers], n_disagree, tied, performance)


def _consensus_boxes(contents: list[AnnotationContent]) -> list[Box]:
    per_label: dict[str, list[list[list[float]]]] = defaultdict(lambda: [[] for _ in contents])
    for r, content in enumerate(contents):
        for box in content.boxes:
            assert box.start is not None and box.end is not None
            per_label[box.label][r].append([*box.start, *box.end])
    out = []
    for label, marks in sorted(per_label.items()):
        for cluster in cluster_boxes([np.asarray(m).reshape(-1, 6) for m in marks]):
            if cluster.chosen:
                c = [round(float(x), 4) for x in cluster.mark]
                out.append(Box(label=label, start=(c[0], c[1], c[2]), end=(c[3], c[4], c[5])))
    return out


def _consensus_points(contents: list[AnnotationContent], radius_mm: float) -> list[Point]:
    per_label: dict[str, list[list[list[float]]]] = defaultdict(lambda: [[] for _ in contents])
    for r, content in enumerate(contents):
        for point in content.points:
            assert point.position_mm is not None
            per_label[point.label][r].append(list(point.position_mm))
    out = []
    for label, marks in sorted(per_label.items()):
        for cluster in cluster_points(
            [np.asarray(m).reshape(-1, 3) for m in marks], radius=radius_mm
        ):
            if cluster.chosen:
                p = [round(float(x), 4) for x in cluster.mark]
                out.append(Point(label=label, position_mm=(p[0], p[1], p[2])))
    return out


def disagreement_mask(
    ctx: Context, actor: Principal, image_id: int, *, annotation_ids: list[int] | None = None
) -> np.ndarray:
    """Voxels where the finished readings of an image differ (1) or agree (0), as a
    ``(planes, rows, columns)`` uint8 mask for the reviewer's overlay."""
    image, readers, _, _ = _inputs(ctx, actor, image_id, annotation_ids)
    shape = tuple(image.shape)
    masks = [load_mask(ctx, rev) for _, rev in readers]
    filled = [m if m is not None else np.zeros(shape, np.uint8) for m in masks]
    return disagreement(filled).astype(np.uint8)


__all__ = ["ConsensusMethod", "ConsensusResult", "build_consensus", "disagreement_mask"]
