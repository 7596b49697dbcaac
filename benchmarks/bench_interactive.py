"""Simulated-annotator benchmark of the annotation engines on real labelled data.

For each data set and engine this runs the library function behind
``medlabel bench interactive`` (:func:`medlabel.quality.interactive_bench.run_benchmark`):
the reference box first, then clicks at the centre of the largest error region; Dice after
each prompt, NoC@85/NoC@90 (prompts to reach the Dice, capped at 1 + max clicks), seconds
per prompt (p50/p95) and the manual polygon baseline (vertices for Dice 0.90).

Data (``--data``, default ``/work/shared/data``; see its README for licences):

- ``kvasir_seg``: Kvasir-SEG colonoscopy polyps, ``images/*.jpg`` + ``masks/*.jpg``
  (Jha et al. 2020);
- ``chase_db1``: CHASE_DB1 retinal vessels, ``training/images/Image_01L.jpg`` +
  ``training/1st_manual/Image_01L_1stHO.png`` (first observer; Fraz et al. 2012);
- ``hippocampus_msd``: Medical Segmentation Decathlon Task04 hippocampus MRI,
  ``images`` + ``labels`` NIfTI, labels 1 (anterior) and 2 (posterior) as separate
  cases (Simpson et al. 2019).

Results go to ``results/interactive_<dataset>_<engine>.json`` (the CLI's report plus the
machine facts of ``common.machine_info``), and a summary table is printed.

Usage::

    python benchmarks/bench_interactive.py --limit 3 --engines threshold,region-grow
    python benchmarks/bench_interactive.py --engines litemedsam --dataset-limit kvasir_seg=100
    python benchmarks/bench_interactive.py           # every engine, every pair (hours)
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import machine_info, save_result, table
from medlabel.core.errors import MedlabelError
from medlabel.engines.registry import default_registry
from medlabel.quality.interactive_bench import run_benchmark
from medlabel.quality.interactive_sim import SimOptions

CLASSICAL = [
    "threshold",
    "region-grow",
    "watershed",
    "random-walker",
    "edge-fill",
    "tissue-classes",
]


@dataclass(frozen=True)
class Dataset:
    images: str
    masks: str
    mask_suffix: str = ""
    citation: str = ""


DATASETS = {
    "kvasir_seg": Dataset(
        "kvasir_seg/images",
        "kvasir_seg/masks",
        citation="Kvasir-SEG: Jha et al., MMM 2020",
    ),
    "chase_db1": Dataset(
        "chase_db1/training/images",
        "chase_db1/training/1st_manual",
        mask_suffix="_1stHO",
        citation="CHASE_DB1: Fraz et al., IEEE TBME 2012 (CC BY 4.0)",
    ),
    "hippocampus_msd": Dataset(
        "hippocampus_msd/images",
        "hippocampus_msd/labels",
        citation="MSD Task04 Hippocampus: Simpson et al. 2019 (CC BY-SA 4.0)",
    ),
}


def _dataset_limits(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in DATASETS or not value.isdigit() or int(value) < 1:
            raise SystemExit(f"--dataset-limit takes DATASET=N with DATASET in {list(DATASETS)}")
        out[name] = int(value)
    return out


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _row(dataset: str, engine: str, s: dict[str, Any], wall: float) -> list[Any]:
    return [
        dataset,
        f"{engine} {s['engine_version']}",
        s["cases"],
        s["failed_cases"],
        _fmt(s["mean_dice_first_prompt"], 3),
        _fmt(s["mean_dice_last_prompt"], 3),
        _fmt(s["noc85"], 2),
        _fmt(s["noc90"], 2),
        _fmt(s["p50_seconds_per_prompt"], 3),
        _fmt(s["p95_seconds_per_prompt"], 3),
        _fmt(s["manual_vertices_dice90"], 1),
        f"{wall:.0f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--engines", default=",".join([*CLASSICAL, "litemedsam"]))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--limit", type=int, default=None, help="first N pairs of each data set")
    parser.add_argument("--dataset-limit", action="append", default=[], metavar="DATASET=N")
    parser.add_argument("--max-clicks", type=int, default=20)
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stop-dice", type=float, default=0.99)
    parser.add_argument("--first-prompt", default="box", choices=["box", "box-click", "click"])
    parser.add_argument("--no-save", action="store_true", help="print only, write no results")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    limits = _dataset_limits(args.dataset_limit)
    datasets = [d for d in args.datasets.split(",") if d]
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise SystemExit(f"unknown data set(s) {unknown}; known: {list(DATASETS)}")
    registry = default_registry()
    engines = [e for e in args.engines.split(",") if e]
    facts = machine_info()
    rows: list[list[Any]] = []
    problems: list[str] = []
    for name in datasets:
        ds = DATASETS[name]
        baselines: dict[tuple[str, int, int], Any] = {}  # shared by the engines
        options = SimOptions(
            max_clicks=args.max_clicks,
            jitter=args.jitter,
            seed=args.seed,
            stop_dice=args.stop_dice,
            first_prompt=args.first_prompt,
            limit=limits.get(name, args.limit),
            mask_suffix=ds.mask_suffix,
        )
        for engine in engines:
            t0 = time.perf_counter()

            def progress(done: int, total: int, case: str, label: str = f"{name} {engine}") -> None:
                print(f"\r{label}: {done}/{total} {case:<40}", end="", file=sys.stderr)

            try:
                report = run_benchmark(
                    args.data / ds.images,
                    args.data / ds.masks,
                    engine,
                    options,
                    registry=registry,
                    progress=progress,
                    baselines=baselines,
                )
            except MedlabelError as exc:
                print(file=sys.stderr)
                problems.append(f"{name} / {engine}: {exc.message}")
                continue
            wall = time.perf_counter() - t0
            print(file=sys.stderr)
            payload = report.to_json()
            payload["summary"]["citation"] = ds.citation
            payload["summary"]["benchmark_machine"] = facts
            payload["summary"]["wall_seconds"] = round(wall, 1)
            if not args.no_save:
                path = save_result(f"interactive_{name}_{engine}", payload)
                print(f"wrote {path}", file=sys.stderr)
            rows.append(_row(name, engine, payload["summary"], wall))

    header = [
        "data set",
        "engine",
        "cases",
        "failed",
        "Dice@1",
        "Dice@last",
        "NoC@85",
        "NoC@90",
        "p50 s/prompt",
        "p95 s/prompt",
        "manual vertices@90",
        "wall s",
    ]
    print(table(rows, header))
    print(
        f"\nmax prompts {1 + args.max_clicks}, jitter {args.jitter}, first prompt "
        f"{args.first_prompt}, stop at Dice {args.stop_dice}; "
        f"{facts['nproc']} CPU(s), {facts['cpu_model']}"
    )
    print("Data: " + "; ".join(DATASETS[d].citation for d in datasets))
    for p in problems:
        print(f"not run: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
