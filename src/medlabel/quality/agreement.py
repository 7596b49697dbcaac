"""Agreement between readers of the same images: per label and per pair of readers.

Pure functions over in-memory readings; the services feed them from the database.
Masks use :func:`medlabel.quality.segmentation.segmentation_metrics` (spacing in mm),
boxes the one-to-one matching of :mod:`medlabel.quality.boxes`, image-level classes
Cohen's kappa per pair and Fleiss' kappa over all readers
(:mod:`medlabel.quality.classification`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from medlabel.quality.boxes import match_boxes
from medlabel.quality.classification import cohen_kappa, fleiss_kappa
from medlabel.quality.segmentation import segmentation_metrics
from medlabel.quality.surface import SpacingLike

#: the per-pair mask metrics an agreement table shows
MASK_METRICS = ("dice", "iou", "hd95", "assd", "nsd", "volume_similarity")


@dataclass(frozen=True)
class Reading:
    """One reader's labels of one image.

    Attributes
    ----------
    reader
        Who read it (a name shown in tables).
    labelmap
        Integer label mask ``(planes, rows, columns)``, or None when the reader drew no
        mask (counted as empty for every mask label).
    classes
        Image-level classes the reader assigned.
    boxes
        Per box label, an ``(n, 6)`` array of corners ``[start..., end...]``.
    """

    reader: str
    labelmap: np.ndarray | None = None
    classes: frozenset[str] = frozenset()
    boxes: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class PairRow:
    """Agreement of reader ``a`` and reader ``b`` on one label of one image.

    ``metrics`` maps a metric name to its value; distances that are undefined (one
    reader marked nothing) are ``inf``.
    """

    label: str
    a: str
    b: str
    metrics: dict[str, float]


def _binary(reading: Reading, value: int, shape: tuple[int, ...]) -> np.ndarray:
    if reading.labelmap is None:
        return np.zeros(shape, bool)
    return np.asarray(reading.labelmap == value)


def _shape(readings: Sequence[Reading]) -> tuple[int, ...] | None:
    shapes = {r.labelmap.shape for r in readings if r.labelmap is not None}
    if len(shapes) > 1:
        raise ValueError(f"readers' masks must have the same shape; got {sorted(shapes)}")
    return shapes.pop() if shapes else None


def mask_metrics(
    a: np.ndarray, b: np.ndarray, spacing: SpacingLike, tolerance_mm: float
) -> dict[str, float]:
    """The agreement metrics of two binary masks (``b`` taken as the reference)."""
    m = segmentation_metrics(a, b, spacing, tolerance_mm=tolerance_mm)
    out = {name: float(getattr(m, name)) for name in MASK_METRICS}
    out.update(
        sensitivity=m.sensitivity,
        precision=m.precision,
        volume_a_mm3=m.pred_volume_mm3,
        volume_b_mm3=m.ref_volume_mm3,
    )
    return out


def mask_pairs(
    readings: Sequence[Reading],
    labels: Mapping[int, str],
    spacing: SpacingLike = None,
    *,
    tolerance_mm: float = 1.0,
) -> list[PairRow]:
    """Mask agreement of every pair of readers on every mask label.

    Parameters
    ----------
    readings
        Two or more readings of one image.
    labels
        Mask label value → name.
    spacing
        Voxel size in mm per array axis.
    tolerance_mm
        Tolerance of the normalised surface Dice.

    Returns
    -------
    list of PairRow
        Label by label, pairs in reading order. A label neither reader used gives the
        both-empty results (Dice 1, distances 0): readers who agree that a structure is
        absent agree.

    Examples
    --------
    >>> a = Reading("ann", np.array([[[0, 1, 1, 0]]]))
    >>> b = Reading("bob", np.array([[[0, 1, 0, 0]]]))
    >>> row = mask_pairs([a, b], {1: "lesion"})[0]
    >>> row.label, row.a, row.b, round(row.metrics["dice"], 3)
    ('lesion', 'ann', 'bob', 0.667)
    """
    shape = _shape(readings)
    if shape is None:
        return []
    rows = []
    for value, name in labels.items():
        masks = [_binary(r, value, shape) for r in readings]
        for (i, ra), (j, rb) in itertools.combinations(enumerate(readings), 2):
            metrics = mask_metrics(masks[i], masks[j], spacing, tolerance_mm)
            rows.append(PairRow(name, ra.reader, rb.reader, metrics))
    return rows


def mask_against_reference(
    readings: Sequence[Reading],
    reference: np.ndarray,
    labels: Mapping[int, str],
    spacing: SpacingLike = None,
    *,
    reference_name: str = "consensus",
    tolerance_mm: float = 1.0,
) -> list[PairRow]:
    """Each reader's masks against a reference label map (e.g. the consensus)."""
    shape = reference.shape
    if _shape([*readings, Reading(reference_name, reference)]) != shape:
        raise ValueError("readers' masks and the reference must have the same shape")
    rows = []
    for value, name in labels.items():
        ref = reference == value
        for r in readings:
            metrics = mask_metrics(_binary(r, value, shape), ref, spacing, tolerance_mm)
            rows.append(PairRow(name, r.reader, reference_name, metrics))
    return rows


def box_pairs(readings: Sequence[Reading], *, iou_threshold: float = 0.5) -> list[PairRow]:
    """Box agreement of every pair of readers per box label: matched boxes at an IoU
    threshold, F1 (symmetric), and the mean IoU of the matches.

    Examples
    --------
    >>> a = Reading("ann", boxes={"nodule": np.array([[0, 0, 0, 1, 10, 10]])})
    >>> b = Reading("bob", boxes={"nodule": np.array([[0, 1, 0, 1, 10, 10]])})
    >>> box_pairs([a, b])[0].metrics["f1"]
    1.0
    """
    names = sorted({name for r in readings for name in r.boxes})
    rows = []
    for name in names:
        for ra, rb in itertools.combinations(readings, 2):
            ba = np.asarray(ra.boxes.get(name, np.zeros((0, 6))), dtype=float).reshape(-1, 6)
            bb = np.asarray(rb.boxes.get(name, np.zeros((0, 6))), dtype=float).reshape(-1, 6)
            m = match_boxes(ba, bb, iou_threshold=iou_threshold)
            n_a, n_b, tp = ba.shape[0], bb.shape[0], len(m.pairs)
            f1 = 1.0 if n_a + n_b == 0 else 2.0 * tp / (n_a + n_b)
            mean_iou = float(np.mean([p[2] for p in m.pairs])) if m.pairs else math.nan
            metrics = {
                "f1": f1,
                "matched": float(tp),
                "boxes_a": float(n_a),
                "boxes_b": float(n_b),
                "mean_iou": mean_iou,
            }
            rows.append(PairRow(name, ra.reader, rb.reader, metrics))
    return rows


@dataclass(frozen=True)
class ClassAgreement:
    """Agreement on one image-level class over many images.

    Attributes
    ----------
    name
        The class.
    pairs
        ``(reader a, reader b, images both read, Cohen's kappa, observed agreement)``.
    fleiss
        Fleiss' kappa over the images that have ``raters`` readers (None if fewer than
        one such image).
    raters
        The number of readers per image Fleiss' kappa was computed for.
    """

    name: str
    pairs: tuple[tuple[str, str, int, float, float], ...]
    fleiss: float | None
    raters: int


def class_agreement(images: Sequence[Mapping[str, frozenset[str]]]) -> list[ClassAgreement]:
    """Agreement on each image-level class: whether a reader assigned it or not.

    Parameters
    ----------
    images
        Per image, reader → the classes they assigned (readers who did not read an image
        are absent from its mapping).

    Returns
    -------
    list of ClassAgreement
        One per class any reader used, sorted by name. Fleiss' kappa uses the images with
        the most common number of readers (it needs a fixed number per image).

    Examples
    --------
    >>> imgs = [{"a": frozenset({"x"}), "b": frozenset({"x"})},
    ...         {"a": frozenset(), "b": frozenset()},
    ...         {"a": frozenset({"x"}), "b": frozenset()}]
    >>> c = class_agreement(imgs)[0]
    >>> c.name, c.pairs[0][:3], round(c.pairs[0][3], 3), round(c.fleiss, 3)
    ('x', ('a', 'b', 3), 0.4, 0.333)
    """
    names = sorted({n for image in images for classes in image.values() for n in classes})
    readers = sorted({r for image in images for r in image})
    counts = [len(image) for image in images if len(image) >= 2]
    raters = max(set(counts), key=counts.count) if counts else 0
    out = []
    for name in names:
        pairs = []
        for ra, rb in itertools.combinations(readers, 2):
            both = [im for im in images if ra in im and rb in im]
            if not both:
                continue
            va = [name in im[ra] for im in both]
            vb = [name in im[rb] for im in both]
            observed = float(np.mean([x == y for x, y in zip(va, vb, strict=True)]))
            pairs.append((ra, rb, len(both), cohen_kappa(va, vb, labels=[False, True]), observed))
        table = [
            [sum(name in c for c in im.values()), sum(name not in c for c in im.values())]
            for im in images
            if len(im) == raters
        ]
        fleiss = fleiss_kappa(table) if table and raters >= 2 else None
        out.append(ClassAgreement(name, tuple(pairs), fleiss, raters))
    return out
