"""STAPLE: a consensus mask, and each reader's performance, from several readers' masks.

Simultaneous Truth And Performance Level Estimation (Warfield, Zou and Wells, IEEE TMI
2004) treats the true segmentation as hidden and each reader as a noisy observer with
their own sensitivity and specificity; expectation-maximisation estimates both. The
multi-label form (Rohlfing et al. 2004; Warfield 2004 §II-D) gives each reader a confusion
matrix instead.

Voxels where the readers give the same combination of answers share one posterior, so the
EM runs over the distinct answer patterns (at most ``labels ** readers`` of them, in
practice a few dozen) weighted by how often each occurs: a 256³ volume with five readers
costs one ``np.unique`` pass, then microseconds per iteration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class StapleResult:
    """The outcome of binary STAPLE.

    Attributes
    ----------
    probability
        Posterior probability that each voxel is foreground, same shape as the masks.
    sensitivity, specificity
        Estimated per reader, in the order the masks were given.
    prior
        The foreground prior used.
    iterations
        EM iterations run; ``converged`` tells whether the tolerance was reached.
    """

    probability: np.ndarray
    sensitivity: tuple[float, ...]
    specificity: tuple[float, ...]
    prior: float
    iterations: int
    converged: bool

    def consensus(self, threshold: float = 0.5) -> np.ndarray:
        """The consensus mask: voxels whose posterior is at least ``threshold``."""
        return self.probability >= threshold


@dataclass(frozen=True)
class MultiLabelStapleResult:
    """The outcome of multi-label STAPLE.

    Attributes
    ----------
    labels
        Label values, in the order of the posterior's last axis and the confusion matrices.
    posterior
        ``(*shape, len(labels))`` probability of each true label per voxel.
    confusion
        ``(readers, labels, labels)``: ``confusion[r, t, o]`` is the estimated probability
        that reader ``r`` answers label ``o`` where the truth is label ``t``.
    """

    labels: tuple[int, ...]
    posterior: np.ndarray
    confusion: np.ndarray
    iterations: int
    converged: bool

    def consensus(self) -> np.ndarray:
        """The most probable label per voxel (ties go to the lower label value)."""
        lut = np.asarray(self.labels)
        out: np.ndarray = lut[np.argmax(self.posterior, axis=-1)]
        return out


def _validate_inputs(maps: Sequence[npt.ArrayLike]) -> list[np.ndarray]:
    arrays = [np.asarray(m) for m in maps]
    if len(arrays) < 2:
        raise ValueError(f"consensus needs at least two readers' masks; got {len(arrays)}")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"readers' masks must have the same shape; got {sorted(shapes)}")
    return arrays


def _patterns(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct answer patterns (``patterns x readers``), their counts and each voxel's one."""
    flat = [a.reshape(-1) for a in arrays]
    values = np.unique(np.concatenate([np.unique(a) for a in flat]))
    base = len(values)
    if base ** len(flat) <= 1 << 22:
        # encode each voxel's answers as one small integer: one bincount instead of a
        # row-wise sort of a (voxels x readers) array
        code = np.zeros(flat[0].shape, dtype=np.int64)
        for a in reversed(flat):
            code *= base
            code += np.searchsorted(values, a)
        counts_all = np.bincount(code, minlength=base ** len(flat))
        present = np.flatnonzero(counts_all)
        lookup = np.zeros(len(counts_all), dtype=np.int64)
        lookup[present] = np.arange(len(present))
        digits = (present[:, None] // base ** np.arange(len(flat))[None, :]) % base
        return values[digits], counts_all[present].astype(np.float64), lookup[code]
    stacked = np.stack(flat, axis=1)
    patterns, inverse, counts = np.unique(stacked, axis=0, return_inverse=True, return_counts=True)
    return patterns, counts.astype(np.float64), inverse.reshape(-1)


def staple(
    masks: Sequence[npt.ArrayLike],
    *,
    prior: float | None = None,
    initial_performance: float = 0.99,
    max_iterations: int = 200,
    tolerance: float = 1e-7,
) -> StapleResult:
    """Binary STAPLE over several readers' masks of one structure.

    Parameters
    ----------
    masks
        Two or more masks of the same shape; non-zero means foreground.
    prior
        Prior probability of foreground; by default the mean fraction of voxels the
        readers mark (as SimpleITK's ``STAPLEImageFilter`` does).
    initial_performance
        Starting sensitivity and specificity of every reader.
    max_iterations, tolerance
        EM stops when no reader's sensitivity or specificity moves more than
        ``tolerance`` in an iteration.

    Returns
    -------
    StapleResult

    Raises
    ------
    ValueError
        Fewer than two masks, differing shapes, or a prior outside (0, 1).

    Notes
    -----
    When no reader marks anything the posterior is zero everywhere and every reader has
    sensitivity 1 (nothing was missed) and specificity 1.

    Examples
    --------
    >>> a = np.zeros((1, 8), bool); a[0, 2:6] = True
    >>> b = a.copy(); b[0, 6] = True
    >>> c = a.copy()
    >>> r = staple([a, b, c])
    >>> r.consensus().astype(int).tolist()
    [[0, 0, 1, 1, 1, 1, 0, 0]]
    >>> round(r.specificity[1], 2) < 1.0
    True
    """
    arrays = _validate_inputs(masks)
    binary = [a != 0 for a in arrays]
    shape = binary[0].shape
    readers = len(binary)
    marked = float(np.mean([b.mean() for b in binary])) if binary[0].size else 0.0
    f = marked if prior is None else float(prior)
    if marked == 0.0 and prior is None:
        return StapleResult(
            np.zeros(shape, np.float64), (1.0,) * readers, (1.0,) * readers, 0.0, 0, True
        )
    if not 0.0 < f < 1.0:
        raise ValueError(f"the foreground prior must lie strictly between 0 and 1; got {f}")
    patterns, counts, inverse = _patterns(binary)
    d = patterns.astype(np.float64)  # patterns x readers, 1 = reader marks foreground
    p = np.full(readers, initial_performance)
    q = np.full(readers, initial_performance)
    eps = 1e-12
    converged = False
    iteration = 0
    w = np.zeros(len(patterns))
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - reported below
        log_a = (
            np.log(f) + d @ np.log(np.clip(p, eps, 1)) + (1 - d) @ np.log(np.clip(1 - p, eps, 1))
        )
        log_b = (
            np.log(1 - f)
            + (1 - d) @ np.log(np.clip(q, eps, 1))
            + d @ np.log(np.clip(1 - q, eps, 1))
        )
        w = 1.0 / (1.0 + np.exp(np.clip(log_b - log_a, -700, 700)))
        wf = w * counts
        wb = (1 - w) * counts
        new_p = (wf @ d) / max(wf.sum(), eps)
        new_q = (wb @ (1 - d)) / max(wb.sum(), eps)
        delta = max(np.max(np.abs(new_p - p)), np.max(np.abs(new_q - q)))
        p, q = new_p, new_q
        if delta < tolerance:
            converged = True
            break
    probability = w[inverse].reshape(shape)
    return StapleResult(
        probability,
        tuple(float(x) for x in p),
        tuple(float(x) for x in q),
        f,
        iteration,
        converged,
    )


def multilabel_staple(
    labelmaps: Sequence[npt.ArrayLike],
    *,
    labels: Sequence[int] | None = None,
    initial_performance: float = 0.99,
    max_iterations: int = 200,
    tolerance: float = 1e-7,
) -> MultiLabelStapleResult:
    """Multi-label STAPLE: a consensus label map from several readers' label maps.

    Parameters
    ----------
    labelmaps
        Two or more integer label maps of the same shape (0 is background and takes part
        like any other label).
    labels
        The label values to consider; by default every value any reader used.
    initial_performance
        Starting probability that a reader answers the true label (the rest is spread
        evenly over the other labels).
    max_iterations, tolerance
        EM stops when no confusion-matrix entry moves more than ``tolerance``.

    Returns
    -------
    MultiLabelStapleResult

    Raises
    ------
    ValueError
        Fewer than two maps, differing shapes, or a reader using a label outside
        ``labels``.

    Notes
    -----
    The label prior is each label's share of all readers' voxels, kept fixed (as in
    SimpleITK's ``MultiLabelSTAPLEImageFilter``).

    Examples
    --------
    >>> a = np.array([[0, 1, 1, 2, 2]])
    >>> b = np.array([[0, 1, 1, 2, 0]])
    >>> c = np.array([[0, 1, 2, 2, 2]])
    >>> multilabel_staple([a, b, c]).consensus().tolist()
    [[0, 1, 1, 2, 2]]
    """
    arrays = _validate_inputs(labelmaps)
    shape = arrays[0].shape
    used = np.unique(np.concatenate([np.unique(a) for a in arrays]))
    values = tuple(int(v) for v in (used if labels is None else labels))
    if labels is not None:
        unknown = sorted(set(used.tolist()) - set(values))
        if unknown:
            raise ValueError(f"readers used labels {unknown} that are not in labels={values}")
    n_labels = len(values)
    readers = len(arrays)
    index = {v: i for i, v in enumerate(values)}
    patterns, counts, inverse = _patterns(arrays)
    # observed label index per pattern and reader
    obs = np.vectorize(index.__getitem__, otypes=[np.int64])(patterns)
    prior = np.zeros(n_labels)
    for r in range(readers):
        prior += np.bincount(obs[:, r], weights=counts, minlength=n_labels)
    prior /= prior.sum()
    off = (1.0 - initial_performance) / max(n_labels - 1, 1)
    confusion = np.full((readers, n_labels, n_labels), off)
    for r in range(readers):
        np.fill_diagonal(confusion[r], initial_performance if n_labels > 1 else 1.0)
    eps = 1e-300
    converged = False
    iteration = 0
    post = np.zeros((len(patterns), n_labels))
    one_hot = [np.eye(n_labels)[obs[:, r]] for r in range(readers)]  # patterns x labels
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - reported below
        log_post = np.log(np.clip(prior, eps, None))[None, :].repeat(len(patterns), 0)
        for r in range(readers):
            # confusion[r][:, obs] -> labels x patterns
            log_post += np.log(np.clip(confusion[r][:, obs[:, r]].T, eps, None))
        log_post -= log_post.max(axis=1, keepdims=True)
        post = np.exp(log_post)
        post /= post.sum(axis=1, keepdims=True)
        weighted = post * counts[:, None]  # patterns x true labels
        totals = np.clip(weighted.sum(axis=0), eps, None)
        new = np.stack([(weighted.T @ one_hot[r]) / totals[:, None] for r in range(readers)])
        delta = float(np.max(np.abs(new - confusion)))
        confusion = new
        if delta < tolerance:
            converged = True
            break
    posterior = post[inverse].reshape(*shape, n_labels)
    return MultiLabelStapleResult(values, posterior, confusion, iteration, converged)
