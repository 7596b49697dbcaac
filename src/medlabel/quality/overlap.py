"""Overlap between two binary masks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def _validate_inputs(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"masks must have the same shape; got {a.shape} and {b.shape}")


def dice(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Dice similarity coefficient ``2 |A ∩ B| / (|A| + |B|)`` of two binary masks.

    Parameters
    ----------
    a, b
        Masks of the same shape (any number of dimensions); non-zero means inside.

    Returns
    -------
    float
        In ``[0, 1]``; ``1.0`` when both masks are empty (they agree that nothing is
        there), ``0.0`` when exactly one is empty.

    Raises
    ------
    ValueError
        If the shapes differ.

    Examples
    --------
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> dice(a, b)
    0.5
    >>> dice(np.zeros(3), np.zeros(3))
    1.0
    """
    a_arr = np.asarray(a) != 0
    b_arr = np.asarray(b) != 0
    _validate_inputs(a_arr, b_arr)
    total = int(np.count_nonzero(a_arr)) + int(np.count_nonzero(b_arr))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(a_arr & b_arr)) / total
