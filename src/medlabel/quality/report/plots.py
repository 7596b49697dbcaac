"""The report's plots as inline SVG text (matplotlib, Agg; no pyplot state).

Output is deterministic: the SVG ids come from ``svg.hashsalt`` (set per plot, so ids of
different plots in one HTML page never collide), the date is left out and text stays
text (``svg.fonttype = "none"``), so the same report renders to the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["box_plots_svg", "confusion_svg", "roc_svg"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _svg(fig: Figure, key: str) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), ids salted with ``key``."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"medlabel-{key}", "svg.fonttype": "none"}):
        fig.savefig(
            buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": "medlabel"}
        )
    text = buf.getvalue()
    return text[text.index("<svg") :].strip()


def box_plots_svg(
    values: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    ylabel: str = "",
    key: str = "box",
) -> str:
    """Box plots of several metrics on one axis: metrics along x, one box per group
    (label) side by side, each case drawn as a dot beside its box.

    Parameters
    ----------
    values
        ``{metric: {group: values}}``; non-finite values are left out. Boxes span the
        quartiles with the median line, whiskers reach 1.5 IQR.
    ylabel
        Axis label (e.g. ``"mm"``).
    key
        Distinguishes this plot's SVG ids from other plots of the page.

    Examples
    --------
    >>> svg = box_plots_svg({"dice": {"1": [0.8, 0.9, 0.85]}, "iou": {"1": [0.7, 0.8]}})
    >>> svg.startswith("<svg") and svg.endswith("</svg>")
    True
    """
    metrics = list(values)
    groups = list(dict.fromkeys(g for m in metrics for g in values[m]))
    k = max(1, len(groups))
    width = 0.7 / k
    fig = _figure(min(2.0 + len(metrics) * (0.6 + 0.35 * k), 14.0), 3.6)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # fixed jitter: the same report draws the same dots
    for gi, group in enumerate(groups):
        colour = _COLOURS[gi % len(_COLOURS)]
        offset = (gi - (k - 1) / 2) * width
        data = [
            (mi + 1 + offset, _finite(values[m].get(group, ()))) for mi, m in enumerate(metrics)
        ]
        kept = [(x, d) for x, d in data if d.size]
        if not kept:
            continue
        ax.boxplot(
            [d for _, d in kept],
            positions=[x for x, _ in kept],
            widths=width * 0.55,
            showfliers=False,
            medianprops={"color": "black"},
            patch_artist=True,
            boxprops={"facecolor": colour, "alpha": 0.35, "edgecolor": "#333"},
            manage_ticks=False,
        )
        for x, d in kept:
            jitter = rng.uniform(-0.04, 0.04, d.size) * width / 0.35
            ax.scatter(x + width * 0.36 + jitter, d, s=6, color=colour, alpha=0.8, linewidths=0)
        ax.plot([], [], color=colour, lw=6, alpha=0.5, label=group)
    ax.set_xticks(range(1, len(metrics) + 1), metrics, fontsize=8)
    ax.set_xlim(0.4, len(metrics) + 0.6)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9)
    if k > 1:
        ax.legend(title="label", fontsize=8, title_fontsize=8, loc="best")
    return _svg(fig, key)


def _finite(v: Sequence[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a[np.isfinite(a)]


def confusion_svg(matrix: np.ndarray, names: Sequence[str], *, key: str = "confusion") -> str:
    """Heatmap of a pixel confusion matrix, rows = reference, columns = prediction.

    Colour is the share of each reference row (so small structures are visible next to
    the background); each cell shows that share and the pixel count.

    Examples
    --------
    >>> confusion_svg(np.array([[90, 10], [5, 45]]), ["0", "1"]).count("<svg")
    1
    """
    m = np.asarray(matrix, dtype=np.float64)
    totals = m.sum(axis=1, keepdims=True)
    share = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    k = len(names)
    size = min(2.4 + 0.9 * k, 9.0)
    fig = _figure(size + 1.2, size)
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for r in range(k):
        for c in range(k):
            colour = "white" if share[r, c] > 0.6 else "black"
            ax.text(
                c,
                r,
                f"{share[r, c]:.1%}\n{int(m[r, c]):,}",
                ha="center",
                va="center",
                fontsize=8 if k < 6 else 6,
                color=colour,
            )
    ax.set_xticks(range(k), names, fontsize=8, rotation=30 if k > 4 else 0)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("reference")
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of reference row")
    return _svg(fig, key)


def roc_svg(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]],
    mean: tuple[np.ndarray, np.ndarray, float] | None = None,
    *,
    key: str = "roc",
) -> str:
    """ROC curves: one thin line per case, and their average in bold.

    Parameters
    ----------
    curves
        ``(case name, false positive rates, true positive rates)`` per case.
    mean
        ``(fpr, tpr, mean AUC)`` of the average curve.

    Examples
    --------
    >>> x = np.array([0.0, 0.2, 1.0]); y = np.array([0.0, 0.8, 1.0])
    >>> roc_svg([("a", x, y)], (x, y, 0.8)).startswith("<svg")
    True
    """
    fig = _figure(4.6, 4.2)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls="--")
    for _, fpr, tpr in curves:
        ax.plot(fpr, tpr, color="#1f77b4", lw=0.7, alpha=0.35)
    if mean is not None:
        fpr, tpr, auc = mean
        ax.plot(fpr, tpr, color="#d62728", lw=2.0, label=f"mean of cases, AUC {auc:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("1 − specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    ax.grid(alpha=0.3)
    return _svg(fig, key)
