"""Descriptive statistics of a metric over cases, with a bootstrap confidence interval.

The interval is a *percentile bootstrap of the mean*: the cases are resampled with
replacement ``n_resamples`` times, the mean of each resample is taken, and the interval
runs from the ``(1 - confidence) / 2`` to the ``(1 + confidence) / 2`` quantile of those
means. The resamples come from ``numpy.random.default_rng(seed)``, so a report states its
seed and can be reproduced exactly. Non-finite values (a Hausdorff distance when one
mask is empty, a NaN the metric defines for undefined cases) are left out of every
figure and counted in ``n_excluded``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Summary", "bootstrap_mean_ci", "summarise"]

#: resampled values held in memory at once (resamples × cases)
_CHUNK_VALUES = 4_000_000


@dataclass(frozen=True)
class Summary:
    """Statistics of one metric over the cases where it is finite.

    All figures are ``None`` when no value is finite; ``sd`` is ``None`` for a single
    value. ``ci_low``/``ci_high`` bound the mean (see the module docstring).
    """

    n: int
    n_excluded: int
    mean: float | None
    sd: float | None
    median: float | None
    q1: float | None
    q3: float | None
    min: float | None
    max: float | None
    ci_low: float | None
    ci_high: float | None

    @property
    def iqr(self) -> float | None:
        """Interquartile range ``q3 - q1``."""
        return None if self.q1 is None or self.q3 is None else self.q3 - self.q1

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["iqr"] = self.iqr
        return out


def bootstrap_mean_ci(
    values: npt.ArrayLike,
    *,
    seed: int = 0,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    Parameters
    ----------
    values
        1D array of finite numbers, one per case.
    seed
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same interval.
    n_resamples
        Number of bootstrap resamples.
    confidence
        Coverage of the interval, in ``(0, 1)``.

    Returns
    -------
    tuple of float
        ``(low, high)``; both equal the value when there is one value.

    Raises
    ------
    ValueError
        Empty or non-finite ``values``, or a parameter out of range.

    Examples
    --------
    >>> low, high = bootstrap_mean_ci([0.8, 0.9, 0.85, 0.7, 0.95], seed=1)
    >>> bool(low < 0.84 < high), (low, high) == bootstrap_mean_ci(
    ...     [0.8, 0.9, 0.85, 0.7, 0.95], seed=1)
    (True, True)
    """
    v = np.asarray(values, dtype=np.float64)
    _validate_inputs(v, n_resamples, confidence)
    n = v.size
    if n == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples, dtype=np.float64)
    step = max(1, _CHUNK_VALUES // n)
    for start in range(0, n_resamples, step):
        stop = min(n_resamples, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = v[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _validate_inputs(v: np.ndarray, n_resamples: int, confidence: float) -> None:
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1D array; got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite; leave out NaN and infinite values first")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1; got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")


def summarise(
    values: npt.ArrayLike,
    *,
    seed: int = 0,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> Summary:
    """Mean, SD, median, quartiles, range and bootstrap CI of the finite ``values``.

    Parameters
    ----------
    values
        One value per case; NaN and ±inf are excluded and counted.
    seed, n_resamples, confidence
        Of the bootstrap interval (:func:`bootstrap_mean_ci`).

    Returns
    -------
    Summary

    Examples
    --------
    >>> s = summarise([1.0, 2.0, 3.0, float("inf")])
    >>> s.n, s.n_excluded, s.mean, s.median, s.min, s.max
    (3, 1, 2.0, 2.0, 1.0, 3.0)
    >>> summarise([float("nan")]).mean is None
    True
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = v[np.isfinite(v)]
    n, excluded = int(finite.size), int(v.size - finite.size)
    if n == 0:
        return Summary(0, excluded, None, None, None, None, None, None, None, None, None)
    q1, median, q3 = (float(q) for q in np.quantile(finite, [0.25, 0.5, 0.75]))
    low, high = bootstrap_mean_ci(finite, seed=seed, n_resamples=n_resamples, confidence=confidence)
    sd = float(np.std(finite, ddof=1)) if n > 1 else None
    return Summary(
        n=n,
        n_excluded=excluded,
        mean=float(finite.mean()),
        sd=None if sd is None or math.isnan(sd) else sd,
        median=median,
        q1=q1,
        q3=q3,
        min=float(finite.min()),
        max=float(finite.max()),
        ci_low=low,
        ci_high=high,
    )
