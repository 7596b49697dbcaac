"""Every per-case metric of a predicted segmentation against a reference, in one call.

:func:`segmentation_metrics` is what evaluation reports and agreement services use:
overlap (:mod:`medlabel.quality.overlap`) and surface distances
(:mod:`medlabel.quality.surface`, computed once) with spacing in mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from medlabel.quality.overlap import confusion_counts
from medlabel.quality.surface import SpacingLike, _spacing, surface_distances


@dataclass(frozen=True)
class SegmentationMetrics:
    """Metrics of one predicted binary mask against its reference.

    Empty masks (see ``docs/metrics.md``): when both are empty, overlap scores are 1.0,
    distances 0.0 and NSD 1.0; when exactly one is empty, Dice, IoU, volume similarity and
    NSD are 0.0 and the distances are ``inf``. Rates with a zero denominator
    (sensitivity with an empty reference, precision with an empty prediction, ...) are 1.0.

    Attributes
    ----------
    dice, iou
        Overlap, in ``[0, 1]``.
    hd, hd95, assd
        Hausdorff distance, its 95th percentile and the average symmetric surface
        distance, in mm.
    nsd
        Normalised surface Dice at ``tolerance_mm``, in ``[0, 1]``.
    volume_similarity
        ``1 - | |P| - |R| | / (|P| + |R|)``, in ``[0, 1]``.
    sensitivity, specificity, precision, f1, accuracy
        Voxel-wise rates (``f1`` equals ``dice``).
    tp, fp, fn, tn
        Voxel counts (inside the ROI if one was given).
    ref_volume_mm3, pred_volume_mm3
        Volumes of the reference and prediction (inside the ROI), in mm³ (in mm² for 2D
        masks).
    tolerance_mm
        The NSD tolerance used.
    """

    dice: float
    iou: float
    hd: float
    hd95: float
    assd: float
    nsd: float
    volume_similarity: float
    sensitivity: float
    specificity: float
    precision: float
    f1: float
    accuracy: float
    tp: int
    fp: int
    fn: int
    tn: int
    ref_volume_mm3: float
    pred_volume_mm3: float
    tolerance_mm: float

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a plain dict (field order kept). Distances may be ``inf``."""
        return asdict(self)


def segmentation_metrics(
    pred: npt.ArrayLike,
    ref: npt.ArrayLike,
    spacing: SpacingLike = None,
    *,
    tolerance_mm: float = 1.0,
    roi: npt.ArrayLike | None = None,
) -> SegmentationMetrics:
    """All binary metrics of ``pred`` against ``ref``.

    Parameters
    ----------
    pred, ref
        2D or 3D masks of the same shape (``(planes, rows, columns)`` for volumes);
        non-zero means inside.
    spacing
        Voxel size in mm per array axis (a number: isotropic; ``None``: 1 mm).
    tolerance_mm
        Tolerance of the normalised surface Dice, in mm.
    roi
        Optional mask: voxel counts only inside it, and only surface voxels inside it
        count for the distances (surfaces are found on the whole masks).

    Returns
    -------
    SegmentationMetrics

    Raises
    ------
    ValueError
        If the shapes differ, the masks are not 2D or 3D, the spacing is invalid or the
        tolerance is negative.

    Examples
    --------
    >>> ref = np.zeros((1, 8, 8), bool); ref[0, 2:6, 2:6] = True
    >>> pred = np.zeros_like(ref); pred[0, 2:6, 2:7] = True
    >>> m = segmentation_metrics(pred, ref, spacing=(2.0, 0.5, 0.5), tolerance_mm=0.5)
    >>> round(m.dice, 4), m.hd, m.nsd, m.tp, m.fp, m.ref_volume_mm3
    (0.8889, 0.5, 1.0, 16, 4, 8.0)
    >>> empty = segmentation_metrics(np.zeros((4, 4)), np.zeros((4, 4)))
    >>> empty.dice, empty.hd95, empty.nsd
    (1.0, 0.0, 1.0)
    """
    p = np.asarray(pred)
    r = np.asarray(ref)
    distances = surface_distances(p, r, spacing, roi=roi)  # validates everything
    sp = _spacing(spacing, p.ndim)
    counts = confusion_counts(p, r, roi)
    n_pred, n_ref = counts.tp + counts.fp, counts.tp + counts.fn
    union = counts.tp + counts.fp + counts.fn
    surf = distances.metrics(tolerance_mm)
    voxel = float(np.prod(sp))
    return SegmentationMetrics(
        dice=counts.f1(),
        iou=counts.tp / union if union else 1.0,
        hd=surf.hd,
        hd95=surf.hd95,
        assd=surf.assd,
        nsd=surf.nsd,
        volume_similarity=1.0 - abs(n_pred - n_ref) / (n_pred + n_ref) if union else 1.0,
        sensitivity=counts.sensitivity(),
        specificity=counts.specificity(),
        precision=counts.precision(),
        f1=counts.f1(),
        accuracy=counts.accuracy(),
        tp=counts.tp,
        fp=counts.fp,
        fn=counts.fn,
        tn=counts.tn,
        ref_volume_mm3=n_ref * voxel,
        pred_volume_mm3=n_pred * voxel,
        tolerance_mm=float(tolerance_mm),
    )


def per_label_metrics(
    pred_labelmap: npt.ArrayLike,
    ref_labelmap: npt.ArrayLike,
    labels: Sequence[int],
    spacing: SpacingLike = None,
    *,
    tolerance_mm: float = 1.0,
    roi: npt.ArrayLike | None = None,
) -> dict[int, SegmentationMetrics]:
    """:func:`segmentation_metrics` of each label of two label maps.

    Parameters
    ----------
    pred_labelmap, ref_labelmap
        Integer label arrays of the same shape (2D or 3D).
    labels
        The labels to evaluate (a label absent from both maps gets the both-empty
        results: Dice 1.0, distances 0.0).
    spacing, tolerance_mm, roi
        As in :func:`segmentation_metrics`.

    Returns
    -------
    dict[int, SegmentationMetrics]
        By label, in the order given.

    Raises
    ------
    ValueError
        If the shapes differ (or as :func:`segmentation_metrics`).

    Examples
    --------
    >>> ref = np.array([[0, 1, 1, 2, 2, 0]])
    >>> pred = np.array([[0, 1, 1, 1, 2, 2]])
    >>> out = per_label_metrics(pred, ref, [1, 2])
    >>> round(out[1].dice, 3), round(out[2].dice, 3)
    (0.8, 0.5)
    """
    p = np.asarray(pred_labelmap)
    r = np.asarray(ref_labelmap)
    if p.shape != r.shape:
        raise ValueError(f"label maps must have the same shape; got {p.shape} and {r.shape}")
    return {
        int(label): segmentation_metrics(
            p == label, r == label, spacing, tolerance_mm=tolerance_mm, roi=roi
        )
        for label in labels
    }
