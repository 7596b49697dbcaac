"""Patient orientation of array axes, and anatomical views in radiological convention.

Array axes are ``(plane, row, column)``; the affine maps them to LPS. A *view* is one of
``axial``, ``coronal`` or ``sagittal``; a view's slice is shown the way radiologists read
it: axial and coronal with the patient's left on the screen's right, axial with anterior
up, coronal and sagittal with superior up, sagittal with anterior on the left.
"""

from __future__ import annotations

import itertools
from enum import StrEnum

import numpy as np

_LETTERS = {(0, 1): "L", (0, -1): "R", (1, 1): "P", (1, -1): "A", (2, 1): "S", (2, -1): "I"}


class View(StrEnum):
    """Anatomical viewing planes."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


# For each view: patient axis normal to the screen, and the (patient axis, sign) that must
# point down and right on the screen.
_VIEW_LAYOUT: dict[View, tuple[int, tuple[int, int], tuple[int, int]]] = {
    View.AXIAL: (2, (1, 1), (0, 1)),  # down = posterior, right = patient left
    View.CORONAL: (1, (2, -1), (0, 1)),  # down = inferior, right = patient left
    View.SAGITTAL: (0, (2, -1), (1, 1)),  # down = inferior, right = posterior
}
_PATIENT_AXIS_OF_VIEW = {View.SAGITTAL: 0, View.CORONAL: 1, View.AXIAL: 2}


def patient_axes(affine: np.ndarray) -> tuple[int, int, int]:
    """For each array axis (plane, row, column), the patient axis (0=x, 1=y, 2=z) it runs
    closest to; a permutation, chosen to maximise alignment for oblique volumes.

    Examples
    --------
    >>> patient_axes(np.diag([2.0, 1.0, 1.0, 1.0])[[2, 1, 0, 3]].T)
    (2, 1, 0)
    """
    d = np.abs(np.asarray(affine, dtype=np.float64)[:3, :3])
    d = d / np.linalg.norm(d, axis=0, keepdims=True)
    best: tuple[int, ...] = (0, 1, 2)
    best_score = -1.0
    for perm in itertools.permutations(range(3)):
        score = sum(d[perm[a], a] for a in range(3))
        if score > best_score:
            best, best_score = perm, score
    return best[0], best[1], best[2]


def axis_codes(affine: np.ndarray) -> tuple[str, str, str]:
    """Letters (L/R/P/A/S/I) of the direction each array axis increases towards."""
    aff = np.asarray(affine, dtype=np.float64)
    axes = patient_axes(aff)
    codes = []
    for a in range(3):
        pa = axes[a]
        sign = 1 if aff[pa, a] >= 0 else -1
        codes.append(_LETTERS[(pa, sign)])
    return codes[0], codes[1], codes[2]


def view_axis(affine: np.ndarray, view: View | str) -> int:
    """The array axis sliced by ``view`` (the one running closest to its normal)."""
    return patient_axes(affine).index(_PATIENT_AXIS_OF_VIEW[View(view)])


def native_view(affine: np.ndarray) -> View:
    """The view whose slices are the array's planes (e.g. axial for an axial CT stack)."""
    pa = patient_axes(affine)[0]
    return {0: View.SAGITTAL, 1: View.CORONAL, 2: View.AXIAL}[pa]


def display_axes(affine: np.ndarray, view: View | str) -> tuple[int, int]:
    """The array axes shown as screen rows (top to bottom) and columns (left to right)."""
    view = View(view)
    axes = patient_axes(np.asarray(affine, dtype=np.float64))
    _, (down_pa, _), (right_pa, _) = _VIEW_LAYOUT[view]
    return axes.index(down_pa), axes.index(right_pa)


def display_slice(
    array: np.ndarray, affine: np.ndarray, view: View | str, index: int
) -> tuple[np.ndarray, dict[str, str]]:
    """Extract slice ``index`` of ``view`` and orient it for display.

    Parameters
    ----------
    array
        ``(planes, rows, columns[, channels])``.
    affine
        The volume's 4x4 affine (LPS).
    view
        ``axial``, ``coronal`` or ``sagittal``.
    index
        Index along the sliced array axis (see :func:`view_axis`).

    Returns
    -------
    image
        2D (or 2D + channels) array, screen rows down and columns right.
    labels
        Orientation letters at the ``top``, ``bottom``, ``left`` and ``right`` edges.

    Raises
    ------
    IndexError
        If ``index`` is outside the sliced axis.
    """
    view = View(view)
    aff = np.asarray(affine, dtype=np.float64)
    axis = view_axis(aff, view)
    n = array.shape[axis]
    if not 0 <= index < n:
        raise IndexError(f"slice {index} is outside 0..{n - 1} for the {view} view")
    img = np.take(array, index, axis=axis)
    remaining = [a for a in range(3) if a != axis]  # array axes of img's first two dims
    _, (down_pa, down_sign), (right_pa, right_sign) = _VIEW_LAYOUT[view]
    row_axis, col_axis = display_axes(aff, view)
    if remaining.index(row_axis) != 0:
        img = np.swapaxes(img, 0, 1)
    if np.sign(aff[down_pa, row_axis]) != down_sign:
        img = img[::-1]
    if np.sign(aff[right_pa, col_axis]) != right_sign:
        img = img[:, ::-1]
    down = _LETTERS[(down_pa, down_sign)]
    right = _LETTERS[(right_pa, right_sign)]
    opposite = {"L": "R", "R": "L", "P": "A", "A": "P", "S": "I", "I": "S"}
    labels = {"bottom": down, "top": opposite[down], "right": right, "left": opposite[right]}
    return img, labels
