"""The evaluation report as data: options, per-case rows, summaries, pixel confusion, ROC.

A :class:`Report` is built by :func:`~medlabel.quality.report.build.build_report` and
written as ``report.json``, ``cases.csv``, ``summary.csv`` and ``report.html``
(:meth:`Report.write`). ``report.json`` holds everything, so :meth:`Report.from_json`
gives the same report back (e.g. for the web UI to show a stored report). Non-finite
numbers are written as the strings ``"Infinity"``, ``"-Infinity"`` and ``"NaN"`` in JSON
(JSON has no such numbers; JavaScript's ``Number()`` reads these strings) and as ``inf``,
``-inf``, ``nan`` in CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.core.errors import InvalidInputError
from medlabel.quality.report.case import SkippedCase
from medlabel.quality.report.stats import Summary

__all__ = [
    "DISTANCE_METRICS",
    "SUMMARY_METRICS",
    "CaseResult",
    "LabelSummary",
    "PixelConfusion",
    "Report",
    "ReportOptions",
    "RocCurve",
    "RocResult",
    "Sources",
]

#: metrics summarised over cases, in display order (``f1`` equals ``dice`` and ``auc`` is
#: added when the predictions carry scores)
SUMMARY_METRICS = (
    "dice",
    "iou",
    "nsd",
    "hd95",
    "hd",
    "assd",
    "volume_similarity",
    "sensitivity",
    "specificity",
    "precision",
    "accuracy",
)
#: metrics in mm
DISTANCE_METRICS = ("hd", "hd95", "assd")
#: per-row values of :class:`CaseResult`, in CSV column order
ROW_METRICS = (
    *SUMMARY_METRICS,
    "f1",
    "auc",
    "tp",
    "fp",
    "fn",
    "tn",
    "ref_volume_mm3",
    "pred_volume_mm3",
)
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ReportOptions:
    """How the report is computed.

    Parameters
    ----------
    labels
        Labels to evaluate; ``None``: every non-zero label found in the cases.
    label_names
        Display names by label (``{1: "vessel"}``).
    tolerance_mm
        Tolerance of the normalised surface Dice (NSD), mm.
    seed, n_resamples, confidence
        Of the percentile bootstrap interval of each mean.
    title
        Heading of the HTML page.
    """

    labels: tuple[int, ...] | None = None
    label_names: Mapping[int, str] = field(default_factory=dict)
    tolerance_mm: float = 1.0
    seed: int = 0
    n_resamples: int = 2000
    confidence: float = 0.95
    title: str = "Segmentation evaluation"

    def __post_init__(self) -> None:
        if self.labels is not None:
            labels = tuple(int(v) for v in self.labels)
            if not labels or any(v <= 0 for v in labels) or len(set(labels)) != len(labels):
                raise InvalidInputError(
                    f"labels must be distinct positive integers (0 is background); got "
                    f"{list(self.labels)}"
                )
            object.__setattr__(self, "labels", labels)
        if not (math.isfinite(self.tolerance_mm) and self.tolerance_mm >= 0):
            raise InvalidInputError(f"tolerance must be ≥ 0 mm; got {self.tolerance_mm}")
        if self.n_resamples < 1:
            raise InvalidInputError(f"n_resamples must be ≥ 1; got {self.n_resamples}")
        if not 0.0 < self.confidence < 1.0:
            raise InvalidInputError(f"confidence must be in (0, 1); got {self.confidence}")
        object.__setattr__(
            self, "label_names", {int(k): str(v) for k, v in self.label_names.items()}
        )

    def label_name(self, label: int) -> str:
        name = self.label_names.get(label)
        return f"{label} {name}" if name else str(label)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["labels"] = None if self.labels is None else list(self.labels)
        out["label_names"] = {str(k): v for k, v in self.label_names.items()}
        out["bootstrap"] = "percentile bootstrap of the mean over cases"
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReportOptions:
        return cls(
            labels=None if data.get("labels") is None else tuple(data["labels"]),
            label_names={int(k): v for k, v in (data.get("label_names") or {}).items()},
            tolerance_mm=float(data["tolerance_mm"]),
            seed=int(data["seed"]),
            n_resamples=int(data["n_resamples"]),
            confidence=float(data["confidence"]),
            title=str(data.get("title", "Segmentation evaluation")),
        )


@dataclass(frozen=True)
class Sources:
    """What was compared (shown in the report's header).

    ``pred``/``ref``/``roi`` describe the two sides in words or paths (a folder, "model
    v3", "annotator alice"); the ``unmatched_*`` lists name files without a partner and
    ``missing_roi`` the cases left out for lack of a region-of-interest mask; ``notes``
    are sentences about how the inputs were read; ``loading`` the reader's settings.
    """

    pred: str = "prediction"
    ref: str = "reference"
    roi: str | None = None
    unmatched_pred: tuple[str, ...] = ()
    unmatched_ref: tuple[str, ...] = ()
    unmatched_roi: tuple[str, ...] = ()
    missing_roi: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    loading: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sources:
        kw: dict[str, Any] = dict(data)
        for key in ("unmatched_pred", "unmatched_ref", "unmatched_roi", "missing_roi", "notes"):
            kw[key] = tuple(kw.get(key) or ())
        return cls(**kw)


@dataclass(frozen=True)
class CaseResult:
    """One label of one case.

    ``present`` says where the label occurs (inside the ROI): ``both``, ``reference``
    (missed by the prediction) or ``prediction`` (absent from the reference). ``values``
    holds :data:`ROW_METRICS` (``auc`` is NaN unless the prediction has scores).
    """

    case: str
    label: int
    present: str
    values: Mapping[str, float]
    spacing: tuple[float, ...]
    shape: tuple[int, ...]
    sources: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "label": self.label,
            "present": self.present,
            "metrics": {k: _jnum(v) for k, v in self.values.items()},
            "spacing": list(self.spacing),
            "shape": list(self.shape),
            "sources": dict(self.sources),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseResult:
        return cls(
            case=data["case"],
            label=int(data["label"]),
            present=data["present"],
            values={k: _pnum(v) for k, v in data["metrics"].items()},
            spacing=tuple(data["spacing"]),
            shape=tuple(data["shape"]),
            sources=dict(data.get("sources") or {}),
        )


@dataclass(frozen=True)
class LabelSummary:
    """Statistics of each metric of one label over its cases.

    ``n_cases`` rows were evaluated; in ``n_absent`` further cases the label occurs in
    neither mask (not counted: every metric would be trivially perfect).
    """

    label: int
    n_cases: int
    n_absent: int
    metrics: Mapping[str, Summary]

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "n_cases": self.n_cases,
            "n_absent": self.n_absent,
            "metrics": {
                k: {f: _jnum(v) for f, v in s.as_dict().items()} for k, s in self.metrics.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelSummary:
        metrics = {}
        for k, s in data["metrics"].items():
            fields = {f: _pnum(v) for f, v in s.items() if f != "iqr"}
            fields["n"], fields["n_excluded"] = int(s["n"]), int(s["n_excluded"])
            metrics[k] = Summary(**fields)
        return cls(int(data["label"]), int(data["n_cases"]), int(data["n_absent"]), metrics)


@dataclass(frozen=True)
class PixelConfusion:
    """Pixels of all cases (inside their ROI) by reference label (rows) and predicted
    label (columns); ``labels[i]`` names row and column ``i`` (0 is background).
    ``complete`` is False when cases with very many labels were left out."""

    labels: tuple[int, ...]
    matrix: np.ndarray
    complete: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "matrix": self.matrix.astype(int).tolist(),
            "complete": self.complete,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PixelConfusion:
        return cls(
            tuple(data["labels"]),
            np.asarray(data["matrix"], dtype=np.int64),
            bool(data.get("complete", True)),
        )


@dataclass(frozen=True)
class RocCurve:
    """A ROC curve (false and true positive rates, thinned and rounded to 6 decimals for
    plotting) and its AUC (from every pixel)."""

    name: str
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "auc": _jnum(self.auc),
            "fpr": [float(v) for v in self.fpr],
            "tpr": [float(v) for v in self.tpr],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RocCurve:
        return cls(
            data["name"], np.asarray(data["fpr"]), np.asarray(data["tpr"]), _pnum(data["auc"])
        )


@dataclass(frozen=True)
class RocResult:
    """ROC of graded predictions of a binary task (label 1): one curve per case and
    their vertical average (``mean``, whose ``auc`` is the mean of the cases' AUCs)."""

    cases: tuple[RocCurve, ...]
    mean: RocCurve
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": [c.to_json() for c in self.cases],
            "mean": self.mean.to_json(),
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RocResult:
        return cls(
            tuple(RocCurve.from_json(c) for c in data["cases"]),
            RocCurve.from_json(data["mean"]),
            data.get("note", ""),
        )


@dataclass(frozen=True)
class Report:
    """An evaluation of predictions against references over many cases.

    Attributes
    ----------
    rows
        One :class:`CaseResult` per case and label present in it, in case order.
    summary
        One :class:`LabelSummary` per evaluated label.
    skipped
        Cases that could not be evaluated, with the reason.
    confusion
        Pooled pixel confusion (reference × prediction labels), inside the ROIs.
    roc
        ROC curves when predictions carried scores, else ``None``.
    """

    options: ReportOptions
    sources: Sources
    labels: tuple[int, ...]
    rows: tuple[CaseResult, ...]
    summary: tuple[LabelSummary, ...]
    skipped: tuple[SkippedCase, ...]
    confusion: PixelConfusion
    roc: RocResult | None
    created_utc: str
    medlabel_version: str
    n_cases: int

    # reading ----------------------------------------------------------------------------
    def label_summary(self, label: int) -> LabelSummary:
        for s in self.summary:
            if s.label == label:
                return s
        raise KeyError(label)

    def worst_first(self, metric: str = "dice") -> list[CaseResult]:
        """Rows ordered from the worst ``metric`` (lowest overlap, largest distance) to
        the best; undefined values first."""
        big_is_bad = metric in DISTANCE_METRICS

        def key(row: CaseResult) -> tuple[int, float, str, int]:
            v = float(row.values.get(metric, math.nan))
            if math.isnan(v):
                return (0, 0.0, row.case, row.label)
            return (1, -v if big_is_bad else v, row.case, row.label)

        return sorted(self.rows, key=key)

    # JSON -------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-ready (no NaN or infinity numbers)."""
        return {
            "format": "medlabel-evaluation-report",
            "format_version": FORMAT_VERSION,
            "medlabel_version": self.medlabel_version,
            "created_utc": self.created_utc,
            "config": self.options.to_json(),
            "sources": self.sources.to_json(),
            "labels": list(self.labels),
            "n_cases": self.n_cases,
            "summary": [s.to_json() for s in self.summary],
            "cases": [r.to_json() for r in self.rows],
            "skipped": [asdict(s) for s in self.skipped],
            "confusion": self.confusion.to_json(),
            "roc": None if self.roc is None else self.roc.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        """The report of :meth:`to_json` (e.g. a stored ``report.json``).

        Raises
        ------
        InvalidInputError
            Not a medlabel evaluation report, or a newer format.
        """
        if data.get("format") != "medlabel-evaluation-report":
            raise InvalidInputError("not a medlabel evaluation report (report.json)")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise InvalidInputError(
                f"report format {data['format_version']} is newer than this medlabel reads "
                f"({FORMAT_VERSION}); upgrade medlabel"
            )
        roc = data.get("roc")
        return cls(
            options=ReportOptions.from_json(data["config"]),
            sources=Sources.from_json(data["sources"]),
            labels=tuple(data["labels"]),
            rows=tuple(CaseResult.from_json(r) for r in data["cases"]),
            summary=tuple(LabelSummary.from_json(s) for s in data["summary"]),
            skipped=tuple(SkippedCase(**s) for s in data["skipped"]),
            confusion=PixelConfusion.from_json(data["confusion"]),
            roc=None if roc is None else RocResult.from_json(roc),
            created_utc=data["created_utc"],
            medlabel_version=data["medlabel_version"],
            n_cases=int(data["n_cases"]),
        )

    # CSV --------------------------------------------------------------------------------
    def cases_csv(self) -> str:
        """One row per case and label, in case order."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["case", "label", "label_name", "present", *ROW_METRICS, "spacing_mm"])
        for r in self.rows:
            w.writerow(
                [
                    r.case,
                    r.label,
                    self.options.label_names.get(r.label, ""),
                    r.present,
                    *(_cnum(r.values.get(m, math.nan)) for m in ROW_METRICS),
                    "x".join(f"{s:g}" for s in r.spacing),
                ]
            )
        return buf.getvalue()

    def summary_csv(self) -> str:
        """One row per label and metric: n, mean, SD, median, quartiles, range, CI."""
        fields = ("n", "n_excluded", "mean", "sd", "median", "q1", "q3", "iqr", "min", "max")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["label", "label_name", "metric", *fields, "ci_low", "ci_high", "n_absent"])
        for s in self.summary:
            for metric, m in s.metrics.items():
                d = m.as_dict()
                w.writerow(
                    [
                        s.label,
                        self.options.label_names.get(s.label, ""),
                        metric,
                        *(_cnum(d[f]) for f in fields),
                        _cnum(m.ci_low),
                        _cnum(m.ci_high),
                        s.n_absent,
                    ]
                )
        return buf.getvalue()

    # files ------------------------------------------------------------------------------
    def to_html(self) -> str:
        """The report as one self-contained HTML page (inline SVG plots, no assets)."""
        from medlabel.quality.report.html import render_html

        return render_html(self)

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write ``report.json``, ``cases.csv``, ``summary.csv`` and ``report.html`` into
        ``out_dir`` (created if needed; files of the same names are replaced).

        Returns
        -------
        dict[str, Path]
            The written files by kind (``json``, ``cases``, ``summary``, ``html``).

        Raises
        ------
        InvalidInputError
            The folder cannot be created or written.
        """
        out = Path(out_dir)
        files = {
            "json": (out / "report.json", json.dumps(self.to_json(), indent=1) + "\n"),
            "cases": (out / "cases.csv", self.cases_csv()),
            "summary": (out / "summary.csv", self.summary_csv()),
            "html": (out / "report.html", self.to_html()),
        }
        try:
            out.mkdir(parents=True, exist_ok=True)
            for path, text in files.values():
                path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(
                f"cannot write the report to {out}: {exc.strerror or exc}"
            ) from None
        return {k: v[0] for k, v in files.items()}


def _jnum(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        f = float(v)
        if math.isnan(f):
            return "NaN"
        if math.isinf(f):
            return "Infinity" if f > 0 else "-Infinity"
        return f
    if isinstance(v, np.integer):
        return int(v)
    return v


def _pnum(v: Any) -> Any:
    if isinstance(v, str):
        return float(v)
    return v


def _cnum(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float | np.floating):
        return repr(float(v))
    return str(v)
