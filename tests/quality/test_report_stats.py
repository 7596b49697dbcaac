"""Summary statistics and the percentile bootstrap interval of the mean."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.quality.report import bootstrap_mean_ci, summarise


def test_edge_cases() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_mean_ci([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_mean_ci([1.0, np.inf])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean_ci([1.0, 2.0], confidence=1.0)
    assert bootstrap_mean_ci([0.7]) == (0.7, 0.7)
    empty = summarise([np.nan, np.inf])
    assert empty.n == 0 and empty.n_excluded == 2 and empty.mean is None and empty.iqr is None
    one = summarise([0.5])
    assert one.sd is None and one.ci_low == one.ci_high == one.mean == 0.5


def test_describes_the_finite_values() -> None:
    s = summarise([4.0, 1.0, np.inf, 3.0, 2.0, np.nan])
    assert (s.n, s.n_excluded) == (4, 2)
    assert s.mean == 2.5 and s.median == 2.5 and (s.min, s.max) == (1.0, 4.0)
    assert s.sd == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert (s.q1, s.q3) == (1.75, 3.25) and s.iqr == 1.5


def test_interval_contains_the_mean_and_is_reproducible() -> None:
    rng = np.random.default_rng(42)
    dice = np.clip(rng.normal(0.8, 0.08, 40), 0, 1)
    low, high = bootstrap_mean_ci(dice, seed=7)
    assert low < dice.mean() < high
    assert (low, high) == bootstrap_mean_ci(dice, seed=7)
    assert (low, high) != bootstrap_mean_ci(dice, seed=8)
    # roughly the normal-theory interval for a sample this size
    half = 1.96 * dice.std(ddof=1) / np.sqrt(dice.size)
    assert high - low == pytest.approx(2 * half, rel=0.15)
    wider = bootstrap_mean_ci(dice, seed=7, confidence=0.99)
    assert wider[0] < low and wider[1] > high


def test_matches_a_plain_loop_over_resamples() -> None:
    values = np.array([0.61, 0.72, 0.93, 0.85, 0.77, 0.69])
    rng = np.random.default_rng(3)
    idx = rng.integers(0, values.size, size=(500, values.size))
    means = values[idx].mean(axis=1)
    expected = tuple(np.quantile(means, [0.025, 0.975]))
    assert bootstrap_mean_ci(values, seed=3, n_resamples=500) == pytest.approx(expected)


def test_chunked_resampling_of_many_cases() -> None:
    """Resamples are drawn in chunks for large case counts; the interval stays sane."""
    values = np.random.default_rng(0).random(5000)
    low, high = bootstrap_mean_ci(values, seed=1, n_resamples=2000)
    assert low < values.mean() < high and high - low < 0.02
