"""Evaluation reports: predictions against references over many cases.

Library API (the file-based ``medlabel eval`` is one caller; the server can feed cases
from the database)::

    from medlabel.quality.report import Case, ReportOptions, Sources, build_report

    report = build_report(cases, ReportOptions(seed=0), Sources(pred="model v3", ref="approved"))
    report.write(out_dir)        # report.json, cases.csv, summary.csv, report.html
    html = report.to_html()      # one self-contained page
    same = Report.from_json(report.to_json())

Files: :func:`pair_files` / :func:`pairs_from_csv` pair prediction, reference and ROI
files by name; :func:`load_case` reads one pair as a :class:`Case`.
"""

from medlabel.quality.report.build import build_report, evaluate_case
from medlabel.quality.report.case import Case, SkippedCase
from medlabel.quality.report.loading import PredKind, load_case, read_mask_file
from medlabel.quality.report.model import (
    CaseResult,
    LabelSummary,
    PixelConfusion,
    Report,
    ReportOptions,
    RocCurve,
    RocResult,
    Sources,
)
from medlabel.quality.report.pairing import FilePair, Pairing, pair_files, pairs_from_csv
from medlabel.quality.report.stats import Summary, bootstrap_mean_ci, summarise

__all__ = [
    "Case",
    "CaseResult",
    "FilePair",
    "LabelSummary",
    "Pairing",
    "PixelConfusion",
    "PredKind",
    "Report",
    "ReportOptions",
    "RocCurve",
    "RocResult",
    "SkippedCase",
    "Sources",
    "Summary",
    "bootstrap_mean_ci",
    "build_report",
    "evaluate_case",
    "load_case",
    "pair_files",
    "pairs_from_csv",
    "read_mask_file",
    "summarise",
]
