"""The report as one self-contained HTML page for readers who are not programmers.

No external assets: styles and a few lines of script (click a column heading to sort a
table) are inline, plots are inline SVG. All text from the inputs is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING

from medlabel.quality.report.model import DISTANCE_METRICS, CaseResult, Summary
from medlabel.quality.report.plots import box_plots_svg, confusion_svg, roc_svg

if TYPE_CHECKING:
    from medlabel.quality.report.model import Report

__all__ = ["METRIC_TITLES", "render_html"]

#: how metrics are named for readers
METRIC_TITLES = {
    "dice": "Dice",
    "iou": "IoU (Jaccard)",
    "nsd": "Surface Dice (NSD)",
    "hd95": "HD95",
    "hd": "Hausdorff distance",
    "assd": "ASSD",
    "volume_similarity": "Volume similarity",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "precision": "Precision",
    "accuracy": "Accuracy",
    "auc": "ROC AUC",
    "f1": "F1",
}
_TABLE_METRICS = (
    "dice",
    "iou",
    "nsd",
    "hd95",
    "hd",
    "assd",
    "sensitivity",
    "specificity",
    "precision",
    "accuracy",
    "volume_similarity",
)

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem auto;
max-width:75rem;padding:0 1rem;color:#1a1a1a;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem;
border-bottom:1px solid #ccd;padding-bottom:.2rem}h3{font-size:1.05rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}
th,td{border:1px solid #d5d8de;padding:.2rem .45rem;text-align:right}
th{background:#eef1f6;position:sticky;top:0}td.t,th.t{text-align:left}
table.sortable th{cursor:pointer}tr.bad td{background:#fff1f0}
.meta td{text-align:left;border:none;padding:.1rem .8rem .1rem 0}
.note{color:#555;font-size:.85rem}.warn{color:#a40000}
.plot svg{max-width:100%;height:auto}.scroll{max-height:40rem;overflow:auto}
"""

_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function(t){
 t.querySelectorAll("th").forEach(function(th,i){th.addEventListener("click",function(){
  var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),up=th.dataset.up!=="1";
  t.querySelectorAll("th").forEach(function(h){h.dataset.up=""});th.dataset.up=up?"1":"0";
  rows.sort(function(r,s){var x=r.cells[i].dataset.v,y=s.cells[i].dataset.v;
   var a=x===undefined?r.cells[i].textContent:parseFloat(x),
       c=y===undefined?s.cells[i].textContent:parseFloat(y);
   if(typeof a==="number"&&isNaN(a))return 1;if(typeof c==="number"&&isNaN(c))return -1;
   return (a<c?-1:a>c?1:0)*(up?1:-1)});
  rows.forEach(function(r){b.appendChild(r)})})})});
"""


def render_html(report: Report) -> str:
    """The whole page (see :meth:`Report.to_html`)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(report.options.title)}</title><style>{_STYLE}</style></head><body>",
        *_header(report),
        *_summary(report),
        *_plots(report),
        *_confusion(report),
        *_roc(report),
        *_cases(report),
        *_problems(report),
        *_method(report),
        f"<script>{_SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts) + "\n"


# formatting ------------------------------------------------------------------------------
def _num(v: float | int | None, metric: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    f = float(v)
    if math.isnan(f):
        return "–"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    if metric in DISTANCE_METRICS or metric.endswith("_mm3"):
        return f"{f:.2f}"
    return f"{f:.4f}"


def _cell(v: float | int | None, metric: str = "") -> str:
    f = math.nan if v is None else float(v)
    key = "NaN" if math.isnan(f) else ("Infinity" if f == math.inf else repr(f))
    return f'<td data-v="{key}">{_num(v, metric)}</td>'


def _title(metric: str, report: Report) -> str:
    title = METRIC_TITLES.get(metric, metric)
    if metric in DISTANCE_METRICS:
        title += " (mm)"
    return title


def _label(report: Report, label: int) -> str:
    return escape(report.options.label_name(label))


def _list(items: Iterable[str], limit: int = 50) -> str:
    items = list(items)
    shown = ", ".join(escape(i) for i in items[:limit])
    more = f" … and {len(items) - limit} more" if len(items) > limit else ""
    return shown + more


# sections --------------------------------------------------------------------------------
def _header(report: Report) -> list[str]:
    s, o = report.sources, report.options
    rows = [
        ("Prediction", s.pred),
        ("Reference", s.ref),
        ("Counted pixels", f"inside the region of interest {s.roi}" if s.roi else "all"),
        ("Cases evaluated", str(report.n_cases)),
        ("Labels", ", ".join(report.options.label_name(v) for v in report.labels) or "none"),
        ("NSD tolerance", f"{o.tolerance_mm:g} mm"),
        (
            "Confidence intervals",
            f"{o.confidence:.0%} percentile bootstrap of the mean, {o.n_resamples} "
            f"resamples, seed {o.seed}",
        ),
        ("Created", f"{report.created_utc} by medlabel {report.medlabel_version}"),
    ]
    out = [f"<h1>{escape(o.title)}</h1>", '<table class="meta">']
    out += [f"<tr><td><b>{escape(k)}</b></td><td>{escape(v)}</td></tr>" for k, v in rows]
    out.append("</table>")
    problems = []
    if report.skipped:
        problems.append(f"{len(report.skipped)} case(s) could not be evaluated")
    unmatched = len(s.unmatched_pred) + len(s.unmatched_ref)
    if unmatched:
        problems.append(f"{unmatched} file(s) without a partner")
    if s.missing_roi:
        problems.append(f"{len(s.missing_roi)} case(s) without a region of interest")
    if problems:
        out.append(
            f'<p class="warn">Attention: {escape("; ".join(problems))} — see '
            '<a href="#problems">below</a>.</p>'
        )
    out += [f'<p class="note">{escape(n)}</p>' for n in s.notes]
    return out


def _summary(report: Report) -> list[str]:
    conf = f"{report.options.confidence:.0%} CI"
    out = [
        "<h2>Summary</h2>",
        '<p class="note">Per label, over the cases where the label occurs in the reference '
        f"or the prediction. Mean [{conf}], standard deviation, median [quartiles], range. "
        "F1 equals Dice and is not repeated.</p>",
    ]
    for ls in report.summary:
        out.append(
            f"<h3>Label {_label(report, ls.label)}: {ls.n_cases} case(s)"
            + (f", absent from both masks in {ls.n_absent} more" if ls.n_absent else "")
            + "</h3>"
        )
        out.append(
            '<table><thead><tr><th class="t">metric</th><th>n</th>'
            f"<th>mean [{conf}]</th><th>SD</th><th>median [Q1–Q3]</th><th>min–max</th>"
            "<th>left out</th></tr></thead><tbody>"
        )
        notes = []
        for metric, m in ls.metrics.items():
            out.append(_summary_row(report, metric, m))
            if m.n_excluded:
                notes.append(_excluded_note(report, ls.label, metric, m.n_excluded))
        out.append("</tbody></table>")
        out += [f'<p class="note">{escape(n)}</p>' for n in notes]
    return out


def _summary_row(report: Report, metric: str, m: Summary) -> str:
    mean = f"{_num(m.mean, metric)} [{_num(m.ci_low, metric)}, {_num(m.ci_high, metric)}]"
    median = f"{_num(m.median, metric)} [{_num(m.q1, metric)}–{_num(m.q3, metric)}]"
    span = f"{_num(m.min, metric)}–{_num(m.max, metric)}"
    return (
        f'<tr><td class="t">{escape(_title(metric, report))}</td><td>{m.n}</td>'
        f"<td>{mean}</td><td>{_num(m.sd, metric)}</td><td>{median}</td><td>{span}</td>"
        f"<td>{m.n_excluded or ''}</td></tr>"
    )


def _excluded_note(report: Report, label: int, metric: str, n: int) -> str:
    title = METRIC_TITLES.get(metric, metric)
    if metric in DISTANCE_METRICS:
        return (
            f"{title}: left out of the statistics in {n} case(s) where one of the masks is "
            "empty (the distance is infinite)."
        )
    if metric == "auc":
        return f"{title}: undefined in {n} case(s) (no scores, or the reference is one class)."
    return f"{title}: undefined in {n} case(s), left out."


def _plots(report: Report) -> list[str]:
    groups = [
        ("overlap", [m for m in _TABLE_METRICS if m not in DISTANCE_METRICS], ""),
        ("distance", list(DISTANCE_METRICS), "mm"),
    ]
    out = [
        "<h2>Distributions</h2>",
        '<p class="note">Per metric and label: the box spans the quartiles with the median, '
        "whiskers reach 1.5 × IQR, each dot is a case. Infinite distances are not drawn.</p>",
    ]
    for key, metrics, unit in groups:
        values = {
            METRIC_TITLES.get(m, m): {
                report.options.label_name(ls.label): [
                    r.values[m] for r in report.rows if r.label == ls.label
                ]
                for ls in report.summary
            }
            for m in metrics
        }
        out.append(f'<div class="plot">{box_plots_svg(values, ylabel=unit, key=key)}</div>')
    return out


def _confusion(report: Report) -> list[str]:
    c = report.confusion
    names = ["0 background" if v == 0 else report.options.label_name(v) for v in c.labels]
    out = [
        "<h2>Pixel confusion</h2>",
        '<p class="note">All pixels of all cases'
        + (" inside the region of interest" if report.sources.roi else "")
        + ": rows are the reference label, columns the predicted label; colour and "
        "percentage are the share of the reference row.</p>",
        f'<div class="plot">{confusion_svg(c.matrix, names)}</div>',
        ""
        if c.complete
        else '<p class="note">Cases with very many labels are not counted here.</p>',
        '<table><thead><tr><th class="t">reference \\ prediction</th>',
    ]
    out += [f"<th>{escape(n)}</th>" for n in names]
    out.append("</tr></thead><tbody>")
    for i, n in enumerate(names):
        cells = "".join(f"<td>{int(v):,}</td>" for v in c.matrix[i])
        out.append(f'<tr><td class="t">{escape(n)}</td>{cells}</tr>')
    out.append("</tbody></table>")
    return out


def _roc(report: Report) -> list[str]:
    roc = report.roc
    if roc is None:
        return []
    mean = (roc.mean.fpr, roc.mean.tpr, roc.mean.auc)
    curves = [(c.name, c.fpr, c.tpr) for c in roc.cases]
    out = [
        "<h2>ROC</h2>",
        '<p class="note">The predictions are graded (probabilities or grey levels): the '
        "curves sweep the threshold over the pixels"
        + (" inside the region of interest" if report.sources.roi else "")
        + "; every other metric uses the prediction thresholded as stated above. Thin "
        "lines: one per case; bold: their vertical average, labelled with the mean AUC of "
        "the cases.</p>",
        f'<div class="plot">{roc_svg(curves, mean)}</div>',
    ]
    if roc.note:
        out.append(f'<p class="note">{escape(roc.note)}.</p>')
    return out


def _cases(report: Report) -> list[str]:
    metrics: Sequence[str] = _TABLE_METRICS
    if any(math.isfinite(r.values.get("auc", math.nan)) for r in report.rows):
        metrics = (*metrics, "auc")
    out = [
        "<h2>Cases</h2>",
        '<p class="note">Worst Dice first; click a column heading to sort. Highlighted: '
        "Dice below the label's first quartile.</p>",
    ]
    for ls in report.summary:
        q1 = ls.metrics["dice"].q1 if "dice" in ls.metrics else None
        rows = [r for r in report.worst_first("dice") if r.label == ls.label]
        out.append(f"<h3>Label {_label(report, ls.label)}</h3>")
        out.append('<div class="scroll"><table class="sortable"><thead><tr>')
        out.append('<th class="t">case</th><th class="t">present in</th>')
        out += [f"<th>{escape(_title(m, report))}</th>" for m in metrics]
        out.append("<th>reference volume</th><th>predicted volume</th></tr></thead><tbody>")
        out += [_case_row(r, metrics, q1) for r in rows]
        out.append("</tbody></table></div>")
    return out


def _case_row(r: CaseResult, metrics: Sequence[str], q1: float | None) -> str:
    bad = q1 is not None and float(r.values["dice"]) < q1
    cells = "".join(_cell(r.values.get(m), m) for m in metrics)
    vols = _cell(r.values["ref_volume_mm3"], "x_mm3") + _cell(r.values["pred_volume_mm3"], "x_mm3")
    title = escape(" | ".join(f"{k}: {v}" for k, v in r.sources.items()), quote=True)
    return (
        f'<tr{" class=bad" if bad else ""}><td class="t" title="{title}">{escape(r.case)}</td>'
        f'<td class="t">{escape(r.present)}</td>{cells}{vols}</tr>'
    )


def _problems(report: Report) -> list[str]:
    s = report.sources
    items = []
    if report.skipped:
        rows = "".join(
            f'<tr><td class="t">{escape(k.name)}</td><td class="t">{escape(k.reason)}</td></tr>'
            for k in report.skipped
        )
        items.append(
            "<h3>Cases not evaluated</h3><table><thead><tr><th class='t'>case</th>"
            f"<th class='t'>reason</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    for title, names in (
        ("Predictions without a reference", s.unmatched_pred),
        ("References without a prediction", s.unmatched_ref),
        ("Region-of-interest files without a case", s.unmatched_roi),
        ("Cases without a region of interest (not evaluated)", s.missing_roi),
    ):
        if names:
            items.append(f"<h3>{escape(title)} ({len(names)})</h3><p>{_list(names)}</p>")
    if not items:
        return []
    return ['<h2 id="problems">Left out</h2>', *items]


def _method(report: Report) -> list[str]:
    o = report.options
    return [
        "<h2>Method</h2>",
        '<p class="note">Overlap metrics count pixels (inside the region of interest when one '
        "is given). Distances are between mask surfaces (pixels with a neighbour outside the "
        "mask), in mm from each file's spacing; HD is the largest, HD95 the 95th percentile "
        "and ASSD the mean of the distances in both directions; the surface Dice (NSD) is "
        f"the share of surface within {o.tolerance_mm:g} mm of the other surface. When one "
        "mask is empty Dice is 0 and distances are infinite; such distances are left out of "
        "means and counted. Rates with an empty denominator are 1.</p>",
        '<p class="note">Confidence intervals: the cases of a label are resampled with '
        f"replacement {o.n_resamples} times (numpy default_rng, seeded from {o.seed} and the "
        f"label), and the {(1 - o.confidence) / 2:.1%} and {(1 + o.confidence) / 2:.1%} "
        "quantiles of the resampled means bound the mean. With few cases these intervals "
        "are too narrow.</p>",
    ]
