"""Per-case figures and the summary of a simulated-annotator run, as JSON-ready data."""

from __future__ import annotations

import datetime as dt
import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from medlabel.quality.interactive_sim import StopReason, Trace, noc, trace_json
from medlabel.quality.manual_baseline import ManualBaseline

#: Dice thresholds of the NoC figures
NOC_THRESHOLDS = (0.85, 0.90)


@dataclass(frozen=True)
class CaseResult:
    """One structure of one image: where it came from, the trace, the manual baseline."""

    name: str
    label: int
    image: str
    mask: str
    shape: tuple[int, int, int]
    trace: Trace
    manual: ManualBaseline
    jitter_seed: tuple[int, ...]

    def noc(self, threshold: float, max_prompts: int) -> int:
        """Prompts to reach Dice ``threshold`` (``max_prompts`` if never reached)."""
        return noc(self.trace.dice, threshold, max_prompts)

    def to_json(self, max_prompts: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "image": self.image,
            "mask": self.mask,
            "shape": list(self.shape),
            "jitter_seed": list(self.jitter_seed),
        }
        out.update(trace_json(self.trace))
        out["dice"] = [round(d, 5) for d in self.trace.dice]
        out["seconds"] = [round(s, 5) for s in self.trace.seconds]
        out["noc85"] = self.noc(0.85, max_prompts)
        out["noc90"] = self.noc(0.90, max_prompts)
        out["manual_vertices_dice90"] = self.manual.vertices
        out["manual_dice"] = round(self.manual.dice, 5)
        out["manual_slices"] = self.manual.slices
        out["manual_reached"] = self.manual.reached
        return out


@dataclass(frozen=True)
class Skipped:
    """A structure not benchmarked, and why."""

    name: str
    label: int
    reason: str


def carried_forward(dice: list[float], max_prompts: int) -> list[float]:
    """Dice per prompt index, the last value repeated after the case stopped.

    Examples
    --------
    >>> carried_forward([0.5, 0.9], 4)
    [0.5, 0.9, 0.9, 0.9]
    """
    if not dice:
        return [0.0] * max_prompts
    return [dice[min(k, len(dice) - 1)] for k in range(max_prompts)]


def machine() -> dict[str, Any]:
    """Facts about the machine that ran the benchmark."""
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 5) if values else None


def summarise(cases: list[CaseResult], max_prompts: int) -> dict[str, Any]:
    """The run's figures over all cases.

    Returns
    -------
    dict
        ``mean_dice_first_prompt``, ``mean_dice_last_prompt``, ``mean_dice_per_prompt``
        (one entry per prompt index, each case carrying its last Dice forward),
        ``noc85``/``noc90`` (mean prompts to reach the Dice, capped at ``max_prompts``)
        with ``reached85``/``reached90`` (fraction of cases that reach it),
        ``p50``/``p95_seconds_per_prompt`` (over every prompt of every case),
        ``manual_vertices_dice90`` (mean), ``cases``, ``failed_cases``.
    """
    curves = np.array([carried_forward(c.trace.dice, max_prompts) for c in cases])
    seconds = [s for c in cases for s in c.trace.seconds]
    out: dict[str, Any] = {
        "cases": len(cases),
        "failed_cases": sum(c.trace.stopped is StopReason.ENGINE_ERROR for c in cases),
        "max_prompts": max_prompts,
        "mean_dice_first_prompt": _mean([c.trace.dice[0] for c in cases]),
        "mean_dice_last_prompt": _mean([c.trace.dice[-1] for c in cases]),
        "mean_dice_per_prompt": [round(float(v), 5) for v in curves.mean(0)] if cases else [],
        "mean_prompts": _mean([float(len(c.trace.dice)) for c in cases]),
    }
    for t in NOC_THRESHOLDS:
        key = f"{round(t * 100)}"
        counts = [c.noc(t, max_prompts) for c in cases]
        out[f"noc{key}"] = _mean([float(n) for n in counts])
        out[f"reached{key}"] = _mean([float(max(c.trace.dice) >= t) for c in cases])
    out["p50_seconds_per_prompt"] = round(float(np.percentile(seconds, 50)), 5) if seconds else None
    out["p95_seconds_per_prompt"] = round(float(np.percentile(seconds, 95)), 5) if seconds else None
    out["manual_vertices_dice90"] = _mean([float(c.manual.vertices) for c in cases])
    return out


@dataclass(frozen=True)
class BenchReport:
    """A whole run: what was measured, how, and the figures."""

    engine: str
    engine_version: str
    images: str
    masks: str
    options: dict[str, Any]
    pairs: int
    unmatched_images: int
    unmatched_masks: int
    cases: tuple[CaseResult, ...]
    skipped: tuple[Skipped, ...]
    date_utc: str
    machine: dict[str, Any]

    @property
    def max_prompts(self) -> int:
        return 1 + int(self.options["max_clicks"])

    def summary(self) -> dict[str, Any]:
        """The run's context and figures (see :func:`summarise`)."""
        out: dict[str, Any] = {
            "engine": self.engine,
            "engine_version": self.engine_version,
            "dataset": {"images": self.images, "masks": self.masks},
            "date_utc": self.date_utc,
            "machine": self.machine,
            "options": self.options,
            "pairs": self.pairs,
            "unmatched_images": self.unmatched_images,
            "unmatched_masks": self.unmatched_masks,
            "skipped": [asdict(s) for s in self.skipped],
        }
        out.update(summarise(list(self.cases), self.max_prompts))
        return out

    def to_json(self) -> dict[str, Any]:
        """``{"summary": ..., "cases": [...]}``."""
        return {
            "summary": self.summary(),
            "cases": [c.to_json(self.max_prompts) for c in self.cases],
        }


def now_utc() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
