"""Build a :class:`~medlabel.quality.report.model.Report` from cases in memory.

The cases may come from files (``medlabel eval``), from the database (a model version's
proposals against approved revisions, one annotator against another) or from anything
else that yields :class:`~medlabel.quality.report.case.Case` objects; they are consumed
one at a time, so an iterator keeps only one case in memory.

Per case, every label present (inside the ROI) in the prediction or the reference is
measured with :func:`medlabel.quality.segmentation.per_label_metrics`; a label present
in neither is not a row (all its metrics would be trivially perfect) but is counted as
``n_absent`` in the summary. The summary of each label and metric is
:func:`~medlabel.quality.report.stats.summarise` over the cases, with the bootstrap
seeded by ``(seed, label)`` so every label's interval is reproducible on its own and all
metrics of a label are resampled with the same case indices.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from medlabel import __version__
from medlabel.core.errors import InvalidInputError, MedlabelError
from medlabel.quality.report.case import Case, SkippedCase
from medlabel.quality.report.model import (
    SUMMARY_METRICS,
    CaseResult,
    LabelSummary,
    PixelConfusion,
    Report,
    ReportOptions,
    RocCurve,
    RocResult,
    Sources,
)
from medlabel.quality.report.stats import summarise

__all__ = ["build_report", "evaluate_case"]

log = logging.getLogger(__name__)

#: callback ``(cases done, name of the last case)``
Progress = Callable[[int, str], None]
#: points kept of each per-case ROC curve (for plotting; the AUC uses every pixel)
_ROC_POINTS = 200
#: cases with more (reference label, predicted label) pairs are left out of the pixel
#: confusion matrix (each pair costs a pass over the image)
_MAX_CONFUSION_PAIRS = 256


@dataclass
class _Acc:
    """What the builder accumulates over cases."""

    rows: list[CaseResult] = field(default_factory=list)
    skipped: list[SkippedCase] = field(default_factory=list)
    confusion: Counter[tuple[int, int]] = field(default_factory=Counter)
    roc: list[RocCurve] = field(default_factory=list)
    confusion_incomplete: bool = False
    roc_notes: set[str] = field(default_factory=set)
    n_cases: int = 0
    names: set[str] = field(default_factory=set)


def build_report(
    cases: Iterable[Case | SkippedCase],
    options: ReportOptions | None = None,
    sources: Sources | None = None,
    *,
    progress: Progress | None = None,
) -> Report:
    """Evaluate every case and summarise per label.

    Parameters
    ----------
    cases
        Cases to evaluate, or :class:`SkippedCase` entries for cases the caller could not
        load (they are listed in the report). A case that fails validation or
        measurement is skipped the same way, with the reason.
    options
        Labels, NSD tolerance, bootstrap seed and resamples (default
        :class:`ReportOptions()`).
    sources
        What was compared, for the report's header.
    progress
        Called after each case with the number done and the case name.

    Returns
    -------
    Report

    Raises
    ------
    InvalidInputError
        No case could be evaluated, or two cases share a name.

    Examples
    --------
    >>> ref = np.zeros((20, 20), np.uint8); ref[5:15, 5:15] = 1
    >>> pred = np.zeros_like(ref); pred[6:15, 5:15] = 1
    >>> report = build_report([Case("a", pred, ref), Case("b", ref, ref)])
    >>> report.labels, [round(r.values["dice"], 3) for r in report.rows]
    ((1,), [0.947, 1.0])
    >>> s = report.label_summary(1).metrics["dice"]
    >>> s.n, round(s.mean, 4), s.ci_low <= s.mean <= s.ci_high
    (2, 0.9737, True)
    """
    options = options or ReportOptions()
    sources = sources or Sources()
    acc = _Acc()
    for done, item in enumerate(cases, start=1):
        name = item.name
        if name in acc.names:
            raise InvalidInputError(f"two cases are named {name!r}; case names must be unique")
        acc.names.add(name)
        if isinstance(item, SkippedCase):
            acc.skipped.append(item)
        else:
            try:
                _add_case(acc, item, options)
            except (MedlabelError, ValueError) as exc:
                reason = exc.message if isinstance(exc, MedlabelError) else str(exc)
                log.warning("case %s skipped: %s", name, reason)
                acc.skipped.append(SkippedCase(name, reason))
        if progress is not None:
            progress(done, name)
    if acc.n_cases == 0:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in acc.skipped[:3])
        raise InvalidInputError(
            "no case could be evaluated" + (f" ({reasons})" if reasons else " (no cases given)")
        )
    return _finish(acc, options, sources)


def evaluate_case(case: Case, options: ReportOptions | None = None) -> list[CaseResult]:
    """The rows of one case (one per label present in either mask), without a report."""
    acc = _Acc()
    _add_case(acc, case, options or ReportOptions())
    return acc.rows


def _present(arr: np.ndarray, roi: np.ndarray | None) -> set[int]:
    values = arr[roi] if roi is not None else arr.ravel()
    if values.size == 0:
        return set()
    top = int(values.max())
    if top < 1 << 20:  # labels are small integers: counting beats sorting
        counts = np.bincount(values.astype(np.intp, copy=False), minlength=top + 1)
        return {int(v) for v in np.flatnonzero(counts)}
    return {int(v) for v in np.unique(values)}


def _add_case(acc: _Acc, raw: Case, options: ReportOptions) -> None:
    from medlabel.quality.segmentation import per_label_metrics

    case = raw.squeezed()
    pred, ref, roi = case.pred_labelmap, case.ref_labelmap, case.roi
    in_pred, in_ref = _present(pred, roi), _present(ref, roi)
    found = (in_pred | in_ref) - {0}
    labels = sorted(found if options.labels is None else found & set(options.labels))
    metrics = per_label_metrics(
        pred, ref, labels, case.spacing, tolerance_mm=options.tolerance_mm, roi=roi
    )
    auc = _case_roc(acc, case, in_pred | in_ref)
    spacing = tuple(case.spacing or ())
    for label in labels:
        values = {k: v for k, v in metrics[label].as_dict().items() if k != "tolerance_mm"}
        values["auc"] = auc if label == 1 else float("nan")
        where = (
            "both"
            if label in in_pred and label in in_ref
            else ("reference" if label in in_ref else "prediction")
        )
        acc.rows.append(
            CaseResult(case.name, label, where, values, spacing, case.shape, case.sources)
        )
    _add_confusion(acc, pred, ref, roi, in_pred, in_ref)
    acc.n_cases += 1


def _add_confusion(
    acc: _Acc,
    pred: np.ndarray,
    ref: np.ndarray,
    roi: np.ndarray | None,
    in_pred: set[int],
    in_ref: set[int],
) -> None:
    """Pixels by (reference label, predicted label), counted with
    :func:`~medlabel.quality.overlap.confusion_counts` (vectorised) per pair of labels
    present in the case."""
    from medlabel.quality.overlap import confusion_counts

    if len(in_pred) * len(in_ref) > _MAX_CONFUSION_PAIRS:
        acc.confusion_incomplete = True
        return
    for a in sorted(in_ref):
        ref_mask = ref == a
        for b in sorted(in_pred):  # masks made one at a time: memory stays at two masks
            n = confusion_counts(pred == b, ref_mask, roi).tp
            if n:
                acc.confusion[(a, b)] += n


def _case_roc(acc: _Acc, case: Case, present: set[int]) -> float:
    """AUC of the case's scores (NaN if none or not a binary task); records the curve."""
    from medlabel.quality.classification import roc_auc, roc_curve

    if case.pred_scores is None:
        return float("nan")
    if not present <= {0, 1}:
        acc.roc_notes.add("ROC is drawn for binary tasks only (labels 0 and 1)")
        return float("nan")
    roi = case.roi
    y = (case.ref_labelmap[roi] if roi is not None else case.ref_labelmap.ravel()) == 1
    s = case.pred_scores[roi] if roi is not None else case.pred_scores.ravel()
    if y.all() or not y.any():
        acc.roc_notes.add("cases whose reference is all one class have no ROC curve")
        return float("nan")
    curve = roc_curve(y, s)
    auc = float(roc_auc(y, s))
    fpr, tpr = np.asarray(curve.fpr), np.asarray(curve.tpr)
    keep = np.unique(np.linspace(0, fpr.size - 1, min(fpr.size, _ROC_POINTS)).astype(int))
    acc.roc.append(RocCurve(case.name, fpr[keep].round(6), tpr[keep].round(6), auc))
    return auc


def _mean_roc(curves: list[RocCurve]) -> RocCurve:
    """Vertical average of the case curves on a fixed false-positive-rate grid (for the
    plot); its ``auc`` is the mean of the cases' AUCs, not the area under this line."""
    grid = np.linspace(0.0, 1.0, 101)
    tpr = np.mean([np.interp(grid, c.fpr, c.tpr) for c in curves], axis=0).round(6)
    return RocCurve("mean of cases", grid, tpr, float(np.mean([c.auc for c in curves])))


def _finish(acc: _Acc, options: ReportOptions, sources: Sources) -> Report:
    labels = options.labels or tuple(sorted({r.label for r in acc.rows}))
    by_label: dict[int, list[CaseResult]] = defaultdict(list)
    for row in acc.rows:
        by_label[row.label].append(row)
    has_auc = any(np.isfinite(r.values.get("auc", np.nan)) for r in acc.rows)
    names = (*SUMMARY_METRICS, "auc") if has_auc else SUMMARY_METRICS
    summary = []
    for label in labels:
        rows = by_label.get(label, [])
        metrics = {}
        for metric in names:
            if metric == "auc" and label != 1:
                continue
            values = np.array([r.values[metric] for r in rows], dtype=np.float64)
            metrics[metric] = summarise(
                values,
                seed=_label_seed(options.seed, label),
                n_resamples=options.n_resamples,
                confidence=options.confidence,
            )
        summary.append(LabelSummary(label, len(rows), acc.n_cases - len(rows), metrics))
    axis = sorted({0, *labels, *(k for pair in acc.confusion for k in pair)})
    index = {v: i for i, v in enumerate(axis)}
    matrix = np.zeros((len(axis), len(axis)), dtype=np.int64)
    for (a, b), n in acc.confusion.items():
        matrix[index[a], index[b]] += n
    roc = None
    if acc.roc:
        roc = RocResult(tuple(acc.roc), _mean_roc(acc.roc), "; ".join(sorted(acc.roc_notes)))
    return Report(
        options=options,
        sources=sources,
        labels=tuple(labels),
        rows=tuple(acc.rows),
        summary=tuple(summary),
        skipped=tuple(acc.skipped),
        confusion=PixelConfusion(tuple(axis), matrix, complete=not acc.confusion_incomplete),
        roc=roc,
        created_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        medlabel_version=__version__,
        n_cases=acc.n_cases,
    )


def _label_seed(seed: int, label: int) -> int:
    """A per-label seed derived from the report's seed (stable across label order)."""
    return int(np.random.SeedSequence([seed, label]).generate_state(1)[0])
