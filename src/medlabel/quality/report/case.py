"""One evaluated case in memory: a predicted and a reference label map on the same grid."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from medlabel.core.errors import InvalidInputError

__all__ = ["Case", "SkippedCase"]


@dataclass(frozen=True)
class Case:
    """A prediction and its reference, the grid spacing, and where pixels count.

    Parameters
    ----------
    name
        Case identifier shown in the report (file stem, image name...).
    pred_labelmap, ref_labelmap
        Integer label maps of the same shape, ``(rows, columns)`` or
        ``(planes, rows, columns)``; 0 is background. Booleans are accepted (True = 1).
        A single plane ``(1, rows, columns)`` is evaluated as a 2D image.
    spacing
        Pixel size in mm along each axis of the label maps (``(row, column)`` or
        ``(plane, row, column)``); ``None`` means 1 mm. Distances (HD, HD95, ASSD, NSD
        tolerance) and volumes are in these units.
    roi
        Optional mask of the same shape; only pixels where it is non-zero count (e.g. a
        fundus camera's field of view). ``None``: every pixel counts.
    pred_scores
        Optional graded prediction (probabilities, any monotone score ≥ 0) of the same
        shape, for the ROC curve of a binary task; ``pred_labelmap`` is its thresholded
        form.
    sources
        Free text describing where the case came from (``{"pred": "a.png", ...}``),
        copied into the report.

    Raises
    ------
    InvalidInputError
        Shapes differ, arrays are not label maps, or the spacing does not fit.

    Examples
    --------
    >>> c = Case("a", np.zeros((4, 5), np.uint8), np.ones((4, 5), bool), spacing=(0.5, 0.5))
    >>> c.ndim, c.ref_labelmap.dtype.name, c.spacing
    (2, 'uint8', (0.5, 0.5))
    """

    name: str
    pred_labelmap: np.ndarray
    ref_labelmap: np.ndarray
    spacing: tuple[float, ...] | None = None
    roi: np.ndarray | None = None
    pred_scores: np.ndarray | None = None
    sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInputError("a case needs a name")
        pred = _labelmap(self.pred_labelmap, self.name, "prediction")
        ref = _labelmap(self.ref_labelmap, self.name, "reference")
        if pred.shape != ref.shape:
            raise InvalidInputError(
                f"{self.name}: prediction shape {list(pred.shape)} differs from the "
                f"reference's {list(ref.shape)}"
            )
        object.__setattr__(self, "pred_labelmap", pred)
        object.__setattr__(self, "ref_labelmap", ref)
        if self.roi is not None:
            roi = np.asarray(self.roi)
            if roi.shape != ref.shape:
                raise InvalidInputError(
                    f"{self.name}: region-of-interest shape {list(roi.shape)} differs from "
                    f"the reference's {list(ref.shape)}"
                )
            object.__setattr__(self, "roi", roi != 0)
        if self.pred_scores is not None:
            scores = np.asarray(self.pred_scores)
            if scores.dtype.kind != "f":
                scores = scores.astype(np.float32)
            if scores.shape != ref.shape:
                raise InvalidInputError(
                    f"{self.name}: score map shape {list(scores.shape)} differs from the "
                    f"reference's {list(ref.shape)}"
                )
            if not np.all(np.isfinite(scores)):
                raise InvalidInputError(f"{self.name}: the score map has NaN or infinite values")
            object.__setattr__(self, "pred_scores", scores)
        spacing = (1.0,) * ref.ndim if self.spacing is None else tuple(self.spacing)
        if len(spacing) != ref.ndim or not all(
            math.isfinite(s) and s > 0 for s in (float(v) for v in spacing)
        ):
            raise InvalidInputError(
                f"{self.name}: spacing must be {ref.ndim} positive numbers (mm per axis of "
                f"the {ref.ndim}D label maps); got {list(spacing)}"
            )
        object.__setattr__(self, "spacing", tuple(float(s) for s in spacing))
        object.__setattr__(self, "sources", dict(self.sources))

    @property
    def ndim(self) -> int:
        """2 or 3, as given (a single plane counts as 3 here)."""
        return int(self.ref_labelmap.ndim)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.ref_labelmap.shape)

    def squeezed(self) -> Case:
        """The case with a single leading plane dropped, so a ``(1, rows, columns)`` image
        is measured in 2D (contours, not slabs)."""
        if self.ndim != 3 or self.shape[0] != 1:
            return self
        return Case(
            self.name,
            self.pred_labelmap[0],
            self.ref_labelmap[0],
            spacing=tuple(self.spacing or (1.0, 1.0, 1.0))[1:],
            roi=None if self.roi is None else self.roi[0],
            pred_scores=None if self.pred_scores is None else self.pred_scores[0],
            sources=self.sources,
        )


def _labelmap(array: np.ndarray, name: str, what: str) -> np.ndarray:
    arr = np.asarray(array)
    if arr.ndim not in (2, 3):
        raise InvalidInputError(
            f"{name}: the {what} must be a 2D or 3D label map; got shape {list(arr.shape)}"
        )
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype.kind not in "ui":
        raise InvalidInputError(
            f"{name}: the {what} must hold integer labels; got {arr.dtype} (threshold or "
            "round it first)"
        )
    if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
        raise InvalidInputError(f"{name}: the {what} has negative labels")
    return arr


@dataclass(frozen=True)
class SkippedCase:
    """A case that could not be evaluated, and why (shown in the report)."""

    name: str
    reason: str
