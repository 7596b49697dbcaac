"""Consensus by vote: label maps voxel by voxel, and image-level classes.

Ties are not hidden: every vote returns where (or for which class) the readers were split,
so a reviewer can adjudicate exactly there.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class MaskVote:
    """The outcome of a voxel-wise vote.

    Attributes
    ----------
    labelmap
        The winning label per voxel; where the vote is tied, ``tie_label``.
    support
        Share of the total weight that voted for the winning label, in ``[0, 1]``.
    tied
        Voxels where two or more labels share the highest weight.
    """

    labelmap: np.ndarray
    support: np.ndarray
    tied: np.ndarray


@dataclass(frozen=True)
class ClassVote:
    """How the readers voted on one image-level class.

    Attributes
    ----------
    name
        The class.
    votes
        Readers (by position) who assigned it.
    share
        Their share of the total weight, in ``[0, 1]``.
    chosen
        True when the share exceeds the threshold.
    tied
        True when the share equals the threshold exactly (an even split).
    """

    name: str
    votes: tuple[int, ...]
    share: float
    chosen: bool
    tied: bool


def _weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"give one weight per reader: {n} readers, {w.shape[0]} weights")
    if np.any(w < 0) or not np.any(w > 0):
        raise ValueError("reader weights must be non-negative and not all zero")
    return w


def majority_vote(
    labelmaps: Sequence[npt.ArrayLike],
    *,
    weights: Sequence[float] | None = None,
    tie_label: int = 0,
) -> MaskVote:
    """Voxel-wise (weighted) majority vote over several readers' label maps.

    Parameters
    ----------
    labelmaps
        Two or more integer label maps of the same shape.
    weights
        One non-negative weight per reader (default: equal).
    tie_label
        Label given to tied voxels; background by default, so a tie never adds
        foreground that half the readers rejected.

    Returns
    -------
    MaskVote

    Raises
    ------
    ValueError
        Fewer than two maps, differing shapes, or bad weights.

    Examples
    --------
    >>> a = np.array([0, 1, 1, 2]); b = np.array([0, 1, 2, 2]); c = np.array([1, 1, 2, 0])
    >>> v = majority_vote([a, b, c])
    >>> v.labelmap.tolist(), v.tied.tolist()
    ([0, 1, 2, 2], [False, False, False, False])
    >>> majority_vote([a, b]).labelmap.tolist()
    [0, 1, 0, 2]
    """
    arrays = [np.asarray(m) for m in labelmaps]
    if len(arrays) < 2:
        raise ValueError(f"a vote needs at least two readers' maps; got {len(arrays)}")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"readers' maps must have the same shape; got {sorted(shapes)}")
    w = _weights(weights, len(arrays))
    values = np.unique(np.concatenate([np.unique(a) for a in arrays]))
    shape = arrays[0].shape
    best = np.full(shape, -1.0)
    second = np.full(shape, -1.0)
    winner = np.zeros(shape, dtype=np.result_type(*arrays, np.int64(tie_label)))
    for value in values:
        score = np.zeros(shape)
        for a, weight in zip(arrays, w, strict=True):
            score += weight * (a == value)
        better = score > best
        second = np.where(better, best, np.maximum(second, score))
        winner = np.where(better, value, winner)
        best = np.where(better, score, best)
    tied = np.isclose(best, second)
    labelmap = np.where(tied, tie_label, winner).astype(winner.dtype)
    return MaskVote(labelmap, best / w.sum(), tied)


def disagreement(labelmaps: Sequence[npt.ArrayLike]) -> np.ndarray:
    """Voxels where not all readers gave the same label.

    Examples
    --------
    >>> disagreement([np.array([0, 1, 1]), np.array([0, 1, 2])]).tolist()
    [False, False, True]
    """
    arrays = [np.asarray(m) for m in labelmaps]
    if len(arrays) < 2:
        raise ValueError(f"disagreement needs at least two readers' maps; got {len(arrays)}")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"readers' maps must have the same shape; got {sorted(shapes)}")
    out = np.zeros(arrays[0].shape, dtype=bool)
    for a in arrays[1:]:
        out |= a != arrays[0]
    return out


def vote_classes(
    readings: Sequence[Collection[str]],
    *,
    weights: Sequence[float] | None = None,
    threshold: float = 0.5,
) -> list[ClassVote]:
    """Vote on image-level classes: each class is in the consensus when the (weighted)
    share of readers who assigned it exceeds ``threshold``.

    Each class is voted on separately, so this works for multi-label tagging as well as
    for one-class-per-image schemes (where it is a plurality vote whenever one class has
    a majority).

    Parameters
    ----------
    readings
        Per reader, the classes they assigned (an empty collection is a vote against
        every class).
    weights
        One non-negative weight per reader (default: equal), e.g. each reader's agreement
        with an earlier consensus.
    threshold
        Share that must be exceeded; an exact tie is reported as ``tied``.

    Returns
    -------
    list of ClassVote
        One per class any reader assigned, sorted by name.

    Examples
    --------
    >>> [(v.name, v.chosen, v.tied) for v in vote_classes([{"benign"}, {"benign"}, {"malignant"}])]
    [('benign', True, False), ('malignant', False, False)]
    >>> vote_classes([{"a"}, set()])[0].tied
    True
    """
    if len(readings) < 2:
        raise ValueError(f"a vote needs at least two readers; got {len(readings)}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must lie in [0, 1); got {threshold}")
    w = _weights(weights, len(readings))
    total = float(w.sum())
    names = sorted({name for reading in readings for name in reading})
    out = []
    for name in names:
        voters = tuple(i for i, reading in enumerate(readings) if name in reading)
        share = float(sum(w[i] for i in voters)) / total
        tied = bool(np.isclose(share, threshold))
        out.append(ClassVote(name, voters, share, share > threshold and not tied, tied))
    return out
