"""Overlap metrics on label arrays, for validation during training.

Pure numpy; the project's full metric set (with spacing, surface distances) lives in
:mod:`medlabel.quality`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def _validate_inputs(pred: np.ndarray, ref: np.ndarray) -> None:
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference {ref.shape}")


def dice_per_label(
    pred: np.ndarray, ref: np.ndarray, labels: Iterable[int]
) -> dict[int, float | None]:
    """Dice of each label value; ``None`` where both arrays lack the label.

    Examples
    --------
    >>> a = np.array([0, 1, 1, 2]); b = np.array([0, 1, 2, 2])
    >>> dice_per_label(a, b, [1, 2, 3])
    {1: 0.6666666666666666, 2: 0.6666666666666666, 3: None}
    """
    _validate_inputs(pred, ref)
    out: dict[int, float | None] = {}
    for value in labels:
        p, r = pred == value, ref == value
        denom = int(p.sum()) + int(r.sum())
        out[int(value)] = None if denom == 0 else 2.0 * int(np.logical_and(p, r).sum()) / denom
    return out


def summarise(cases: Sequence[dict[int, float | None]], labels: Sequence[int]) -> dict[str, float]:
    """Mean Dice per label over cases (cases without the label skipped) as
    ``dice_<value>``, and their mean as ``mean_dice``.

    Examples
    --------
    >>> summarise([{1: 0.5, 2: None}, {1: 1.0, 2: 0.8}], [1, 2])
    {'dice_1': 0.75, 'dice_2': 0.8, 'mean_dice': 0.775}
    """
    out: dict[str, float] = {}
    for value in labels:
        vals = [c[value] for c in cases if c.get(value) is not None]
        out[f"dice_{value}"] = float(np.mean([v for v in vals if v is not None])) if vals else 0.0
    per_label = [out[f"dice_{v}"] for v in labels]
    out["mean_dice"] = float(np.mean(per_label)) if per_label else 0.0
    return out
