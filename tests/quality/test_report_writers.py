"""The report's files: JSON and CSV round trips, and an HTML page that stands alone."""

from __future__ import annotations

import csv
import io
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from medlabel.core.errors import InvalidInputError
from medlabel.quality.report import (
    Case,
    Report,
    ReportOptions,
    SkippedCase,
    Sources,
    build_report,
)
from tests.quality.report_fixtures import coins_masks


@pytest.fixture(scope="module")
def report() -> Report:
    ref, pred, prob = coins_masks()
    empty = np.zeros_like(ref)
    windows = [(slice(0, 150), slice(0, 200)), (slice(100, 303), slice(150, 384))]
    cases: list[Case | SkippedCase] = [
        Case(f"crop{i}", pred[w], ref[w], spacing=(0.5, 0.5), pred_scores=prob[w] / 255.0)
        for i, w in enumerate(windows)
    ]
    cases.append(Case("empty <pred>", empty, ref, spacing=(0.5, 0.5)))  # HD is infinite
    cases.append(SkippedCase("broken", "broken.png: not a readable PNG file"))
    return build_report(
        cases,
        ReportOptions(label_names={1: "coin"}, seed=11, n_resamples=500, title="Coins & co"),
        Sources(pred="tight threshold", ref="Otsu", unmatched_ref=("lonely.png",)),
    )


def test_json_round_trip(report: Report, tmp_path: Path) -> None:
    files = report.write(tmp_path / "out")
    assert sorted(p.name for p in files.values()) == [
        "cases.csv",
        "report.html",
        "report.json",
        "summary.csv",
    ]
    text = files["json"].read_text()
    data = json.loads(text)  # strict JSON: no NaN or Infinity numbers
    assert "NaN," not in text and ": Infinity" not in text
    assert data["config"]["seed"] == 11 and data["config"]["n_resamples"] == 500
    assert data["medlabel_version"] and data["n_cases"] == 3
    assert data["skipped"] == [{"name": "broken", "reason": "broken.png: not a readable PNG file"}]
    row = next(r for r in data["cases"] if r["case"] == "empty <pred>")
    assert row["metrics"]["hd"] == "Infinity" and row["metrics"]["auc"] == "NaN"
    again = Report.from_json(data)
    assert again.to_json() == data
    assert math.isinf(again.rows[2].values["hd"])
    with pytest.raises(InvalidInputError, match="not a medlabel evaluation report"):
        Report.from_json({"format": "other"})


def test_cases_csv(report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(report.cases_csv())))
    assert [r["case"] for r in rows] == ["crop0", "crop1", "empty <pred>"]
    for parsed, row in zip(rows, report.rows, strict=True):
        assert parsed["label_name"] == "coin" and parsed["spacing_mm"] == "0.5x0.5"
        for key in ("dice", "hd95", "sensitivity", "auc", "tp", "pred_volume_mm3"):
            value = float(parsed[key])
            expected = float(row.values[key])
            assert (math.isnan(value) and math.isnan(expected)) or value == expected
    assert rows[2]["hd"] == "inf"


def test_summary_csv(report: Report) -> None:
    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(report.summary_csv()))}
    dice = report.label_summary(1).metrics["dice"]
    assert float(rows["dice"]["mean"]) == dice.mean and int(rows["dice"]["n"]) == 3
    assert float(rows["dice"]["ci_low"]) <= dice.mean <= float(rows["dice"]["ci_high"])
    assert rows["hd"]["n"] == "2" and rows["hd"]["n_excluded"] == "1"
    assert "auc" in rows and rows["auc"]["n"] == "2"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.open: list[str] = []
        self.text: list[str] = []
        self.external: list[str] = []
        self.table_cells: int = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(value)
        if tag == "td":
            self.table_cells += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_stands_alone_and_shows_everything(report: Report) -> None:
    page = report.to_html()
    parser = _Page()
    parser.feed(page)
    parser.close()
    text = " ".join(parser.text)
    assert page.startswith("<!DOCTYPE html>")
    assert parser.external == []  # no external assets
    assert parser.tags["svg"] == 4  # overlap boxes, distance boxes, confusion, ROC
    assert parser.tags["table"] >= 4 and parser.table_cells > 50
    for needle in ("Coins &amp; co", "empty &lt;pred&gt;"):
        assert needle in page  # escaped
    for needle in ("tight threshold", "Otsu", "Summary", "95% CI", "ROC AUC", "lonely.png",
                   "broken.png: not a readable PNG file", "seed 11", "1 coin"):  # fmt: skip
        assert needle in text, needle
    assert "left out of the statistics in 1 case(s) where one of the masks is empty" in text
    # worst Dice first in the case table
    assert text.index("empty <pred>") < text.index("crop0")


def test_html_is_deterministic(report: Report) -> None:
    assert report.to_html() == report.to_html()
    again = Report.from_json(report.to_json())
    assert again.to_html() == report.to_html()


def test_write_into_an_unusable_folder(report: Report, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="cannot write the report"):
        report.write(tmp_path / "file")
