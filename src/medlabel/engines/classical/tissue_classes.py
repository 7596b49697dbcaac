"""Tissue classes by intensity: k-means or a Gaussian mixture, fitted on a subsample.

Intended for MR (and usable on any image): the slice's intensities (or the box's) are
split into 2-6 classes, numbered by ascending mean; the proposal is one class, chosen by
index or by clicking on it. The fit works on the histogram (:data:`BINS` bins) of a
random subsample of :data:`SAMPLES` pixels drawn with a fixed seed (recorded in
``info``), so the same image always gives the same classes. K-means is solved exactly
(in one dimension the classes are intensity runs, found by dynamic programming), so no
starting guess can trap it in a poor split; the Gaussian mixture starts from the k-means
classes and iterates expectation-maximisation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from medlabel.engines.base import EngineRequest, ParamKind, ParamSpec, PromptKind, Proposal
from medlabel.engines.classical.common import (
    describe_window,
    inside,
    params_of,
    plane_box,
    plane_seeds,
    slice_gray,
    summary,
)
from medlabel.imaging.volume import Volume

#: pixels drawn (without replacement) to fit the classes
SAMPLES = 65536
#: histogram bins the fit works on
BINS = 512
#: seed of the subsample
SEED = 0
#: grid of intensities on which mixture classes are tabulated
GRID = 4096


class ClusterMethod(StrEnum):
    KMEANS = "kmeans"
    GMM = "gmm"


@dataclass(frozen=True)
class TissueClasses:
    """Fitted classes, numbered by ascending mean.

    ``stds`` and ``weights`` are the mixture's (for k-means: each class's spread and
    share of the sample).
    """

    method: ClusterMethod
    means: tuple[float, ...]
    stds: tuple[float, ...]
    weights: tuple[float, ...]

    def classify(self, image: np.ndarray) -> np.ndarray:
        """The class index (``int8``) of every pixel of ``image``."""
        data = np.asarray(image, np.float32)
        means = np.asarray(self.means)
        if len(means) == 1:
            return np.zeros(data.shape, np.int8)
        if self.method is ClusterMethod.KMEANS:
            return np.searchsorted((means[1:] + means[:-1]) / 2, data).astype(np.int8)
        lo, hi = float(data.min()), float(data.max())
        grid = np.linspace(lo, hi, GRID)
        table = np.argmax(self._log_density(grid), axis=0).astype(np.int8)
        idx = np.rint((data - lo) * ((GRID - 1) / max(hi - lo, 1e-12))).astype(np.intp)
        out: np.ndarray = table[np.clip(idx, 0, GRID - 1)]
        return out

    def _log_density(self, x: np.ndarray) -> np.ndarray:
        means = np.asarray(self.means)[:, None]
        stds = np.asarray(self.stds)[:, None]
        weights = np.asarray(self.weights)[:, None]
        z = (x[None, :] - means) / stds
        out: np.ndarray = np.log(np.maximum(weights, 1e-300)) - np.log(stds) - 0.5 * z * z
        return out


def _validate_inputs(values: np.ndarray, classes: int) -> None:
    if values.size == 0:
        raise ValueError("no pixel to fit tissue classes on")
    if not 1 <= classes <= 16:
        raise ValueError(f"classes must be between 1 and 16, got {classes}")
    if not np.all(np.isfinite(values)):
        raise ValueError("the intensities contain NaN or infinite values")


def fit_tissue_classes(
    values: np.ndarray,
    *,
    method: ClusterMethod | str = ClusterMethod.KMEANS,
    classes: int = 3,
    seed: int = SEED,
    samples: int = SAMPLES,
) -> tuple[TissueClasses, dict[str, Any]]:
    """Fit ``classes`` intensity classes to ``values``.

    Parameters
    ----------
    values
        Intensities, any shape (flattened), in image units.
    method
        ``kmeans`` or ``gmm`` (:class:`ClusterMethod`).
    classes
        Number of classes; fewer when ``values`` has fewer distinct values.
    seed, samples
        The subsample: ``samples`` values drawn with ``numpy.random.default_rng(seed)``
        (all values when there are fewer).

    Returns
    -------
    model : TissueClasses
    info : dict
        ``seed``, ``samples`` used and the mixture's ``iterations`` (0 for k-means).

    Raises
    ------
    ValueError
        If ``values`` is empty or not finite, or ``classes`` is out of range.

    Examples
    --------
    >>> v = np.repeat([10.0, 50.0, 90.0], 100) + np.tile([-1.0, 1.0], 150)
    >>> model, _ = fit_tissue_classes(v, classes=3)
    >>> [round(m) for m in model.means]
    [10, 50, 90]
    >>> model.classify(np.array([12.0, 88.0])).tolist()
    [0, 2]
    """
    flat = np.asarray(values, np.float32).reshape(-1)
    _validate_inputs(flat, classes)
    method = ClusterMethod(method)
    rng = np.random.default_rng(seed)
    sample = flat if flat.size <= samples else rng.choice(flat, samples, replace=False)
    distinct = np.unique(sample)
    k = min(classes, distinct.size)
    if distinct.size <= BINS:
        centres = distinct.astype(np.float64)
        weights = np.bincount(np.searchsorted(distinct, sample), minlength=distinct.size)
        width = 0.0
    else:
        hist, edges = np.histogram(sample, BINS)
        keep = hist > 0
        centres = ((edges[:-1] + edges[1:]) / 2)[keep]
        weights = hist[keep]
        width = float(edges[1] - edges[0])
    w = weights.astype(np.float64)
    k = min(k, centres.size)
    means = _kmeans(centres, w, k)
    stds, shares = _spread(centres, w, means, width)
    iterations = 0
    if method is ClusterMethod.GMM and k > 1:
        means, stds, shares, iterations = _mixture(centres, w, means, stds, shares, width)
    model = TissueClasses(
        method=method,
        means=tuple(float(m) for m in means),
        stds=tuple(float(s) for s in stds),
        weights=tuple(float(s) for s in shares),
    )
    return model, {"seed": seed, "samples": int(sample.size), "iterations": iterations}


def _kmeans(x: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Optimal weighted 1D k-means of sorted values ``x`` by dynamic programming: the
    classes of sorted values are runs, and the best split into ``k`` runs minimises the
    within-class sum of squares exactly (no starting guess). Sorted means."""
    n = x.size
    xc = x - np.average(x, weights=w)  # centred: less cancellation in the sums
    cw = np.concatenate([[0.0], np.cumsum(w)])
    cs = np.concatenate([[0.0], np.cumsum(w * xc)])
    cq = np.concatenate([[0.0], np.cumsum(w * xc * xc)])
    start, stop = np.arange(n + 1)[:, None], np.arange(n + 1)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        # cost[i, j]: sum of squares of the run of values i..j-1 about its mean
        cost = cq[stop] - cq[start] - (cs[stop] - cs[start]) ** 2 / (cw[stop] - cw[start])
    cost[start >= stop] = np.inf
    best = cost[0]  # best[j]: values 0..j-1 in one class
    back = []
    for _ in range(1, k):
        total = best[:, None] + cost
        arg = np.argmin(total, axis=0)
        best = total[arg, np.arange(n + 1)]
        back.append(arg)
    bounds = [n]
    for arg in reversed(back):
        bounds.append(int(arg[bounds[-1]]))
    bounds.append(0)
    bounds.reverse()
    means = [(cs[b] - cs[a]) / (cw[b] - cw[a]) for a, b in itertools.pairwise(bounds)]
    return np.sort(np.asarray(means) + np.average(x, weights=w))


def _spread(
    x: np.ndarray, w: np.ndarray, means: np.ndarray, width: float
) -> tuple[np.ndarray, np.ndarray]:
    k = means.size
    label = np.searchsorted((means[1:] + means[:-1]) / 2, x) if k > 1 else np.zeros(x.size, int)
    total = np.bincount(label, w, minlength=k)
    var = np.bincount(label, w * (x - means[label]) ** 2, minlength=k) / np.maximum(total, 1e-300)
    return np.sqrt(var + _floor(x, width)), total / total.sum()


def _floor(x: np.ndarray, width: float) -> float:
    """Smallest variance: a histogram bin's, and a tiny fraction of the range."""
    span = float(x[-1] - x[0]) if x.size > 1 else 1.0
    return width * width / 12 + (1e-4 * max(span, 1e-6)) ** 2


def _mixture(
    x: np.ndarray,
    w: np.ndarray,
    means: np.ndarray,
    stds: np.ndarray,
    shares: np.ndarray,
    width: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Weighted 1D expectation-maximisation of a Gaussian mixture; sorted by mean."""
    floor = _floor(x, width)
    previous = -np.inf
    it = 0
    while it < 500:
        it += 1
        z = (x[None, :] - means[:, None]) / stds[:, None]
        log_p = np.log(np.maximum(shares, 1e-300))[:, None] - np.log(stds)[:, None] - 0.5 * z * z
        top = log_p.max(0)
        resp = np.exp(log_p - top)
        norm = resp.sum(0)
        resp /= norm
        likelihood = float((w * (top + np.log(norm))).sum())
        rw = resp * w[None, :]
        total = rw.sum(1)
        alive = total > 1e-12 * w.sum()
        safe = np.maximum(total, 1e-300)
        means = np.where(alive, (rw * x[None, :]).sum(1) / safe, means)
        var = (rw * (x[None, :] - means[:, None]) ** 2).sum(1) / safe
        stds = np.where(alive, np.sqrt(var + floor), stds)
        shares = total / total.sum()
        if likelihood - previous <= 1e-7 * abs(likelihood):
            break
        previous = likelihood
    order = np.argsort(means)
    return means[order], stds[order], shares[order], it


def _validate_pick(pick: int, classes: int, clicks: Sequence[tuple[int, int]]) -> None:
    if pick >= classes:
        raise ValueError(
            f"pick {pick} names no class: the image gives {classes} classes (0..{classes - 1})"
        )
    if pick < 0 and not clicks:
        raise ValueError(
            "pick -1 takes the class under a positive click: click on the tissue, or set "
            "pick to a class index (0 = darkest)"
        )


class TissueClassesEngine:
    """Tissue classes by intensity (see the module description).

    With a box the classes are fitted in the box and the mask limited to it. With
    ``pick`` -1 the mask is the union of the classes under the positive clicks (a box
    without clicks: the class at the box's centre). A
    previous mask is accepted and ignored: the proposal is the class alone (the service
    merges it). ``info["class_means"]`` lists the class means, ascending.
    """

    name: str = "tissue-classes"
    version: str = "1"
    title: str = "Tissue classes"
    description: str = (
        "Splits the slice's intensities into classes (k-means or Gaussian mixture) and "
        "keeps the class you click on or name (0 = darkest); for MR tissue types."
    )
    prompts: frozenset[PromptKind] = frozenset(
        {PromptKind.NONE, PromptKind.POSITIVE, PromptKind.BOX, PromptKind.PREVIOUS}
    )
    required: frozenset[PromptKind] = frozenset()
    params: tuple[ParamSpec, ...] = (
        ParamSpec(
            "method",
            ParamKind.CHOICE,
            ClusterMethod.KMEANS.value,
            "kmeans: nearest class mean; gmm: Gaussian mixture",
            choices=tuple(m.value for m in ClusterMethod),
        ),
        ParamSpec("classes", ParamKind.INT, 3, "number of classes", minimum=2, maximum=6),
        ParamSpec(
            "pick",
            ParamKind.INT,
            -1,
            "class to keep, 0 = darkest (-1: the class under the click)",
            minimum=-1,
            maximum=5,
        ),
    )
    volumetric: bool = False

    def run(self, volume: Volume, request: EngineRequest) -> Proposal:
        """Fit classes on the request's slice (or box) and return the chosen one."""
        p = params_of(self.params, request)
        view, image = slice_gray(volume, request)
        box = plane_box(view, request)
        region = image[box] if box is not None else image
        model, info = fit_tissue_classes(region, method=p["method"], classes=int(p["classes"]))
        clicks = plane_seeds(view, request.positive)
        pick = int(p["pick"])
        if pick < 0 and not clicks and box is not None:
            # a box alone: the class at its centre, where the boxed structure is
            rows, cols = box
            clicks = [((rows.start + rows.stop - 1) // 2, (cols.start + cols.stop - 1) // 2)]
            info["centre_pick"] = True
        _validate_pick(pick, len(model.means), clicks)
        labels = model.classify(image)
        picked = sorted({int(labels[c]) for c in clicks}) if pick < 0 else [pick]
        mask = np.isin(labels, picked)
        if box is not None:
            mask &= inside(image.shape, box)
        info.update(
            method=model.method.value,
            classes=len(model.means),
            class_means=[round(m, 6) for m in model.means],
            class_stds=[round(s, 6) for s in model.stds],
            class_weights=[round(s, 6) for s in model.weights],
            picked=picked,
            box=describe_window(box),
            pixels=int(np.count_nonzero(mask)),
        )
        if len(model.means) < int(p["classes"]):
            info["warning"] = (
                f"the image has only {len(model.means)} distinct values: "
                f"{len(model.means)} classes instead of {int(p['classes'])}"
            )
        return Proposal.from_plane(mask, axis=view.axis, index=view.index, info=summary(info))
