"""Latency of the classical annotation engines on one 512×512 CT slice and one RGB image.

Each engine (``medlabel.engines.classical``) runs through ``medlabel.engines.runner.run``
(prompt and parameter validation included, as the service calls it) with typical prompts,
3 warm-up runs and then ``--runs`` measured runs (default 30), one after another in this
process. Reported per engine and image: p50 and p95 of the wall time, the median CPU time
of the process (close to the wall time unless other processes competed for the CPU), the
pixels proposed and the facts the engine returned. The target is p50 ≤ 0.1 s.

Images (real files that installed packages ship, never downloaded):

* CT: ``693_UNCR.dcm`` from pydicom-data, a 512×512 head CT slice, in HU. Without
  pydicom-data, pydicom's own ``CT_small.dcm`` (128×128) upsampled 4× (bilinear) stands in,
  and the result says so.
* RGB: ``US1_UNCR.dcm`` from pydicom-data, a 480×640 colour (power Doppler) ultrasound
  image of a lymph node. Without pydicom-data, the CT slice rendered to RGB (soft-tissue
  window) stands in.

Usage::

    python benchmarks/bench_classical.py              # 30 runs per engine and image
    python benchmarks/bench_classical.py --quick      # smoke check: 5 runs
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from scipy import ndimage

from common import MachineLoad, machine_info, save_result, table, wait_for_quiet
from medlabel.engines.base import EngineRequest, Point
from medlabel.engines.classical import ENGINES
from medlabel.engines.runner import run
from medlabel.imaging.volume import Volume

TARGET_S = 0.1
WARMUP = 3

log = logging.getLogger("bench_classical")


@dataclass(frozen=True)
class Case:
    """One image and the prompts each engine gets on it."""

    name: str
    volume: Volume
    source: str
    prompts: dict[str, dict[str, Any]]


def _p(row: float, column: float) -> Point:
    return (0.0, float(row), float(column))


def _line(shape: tuple[int, int, int], rows: slice, column: int) -> np.ndarray:
    """A vertical scribble, 3 pixels wide."""
    out = np.zeros(shape, bool)
    out[0, rows, column - 1 : column + 2] = True
    return out


def ct_case() -> Case:
    path = get_testdata_file("693_UNCR.dcm", download=False)
    if path is not None:
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        spacing = [float(v) for v in ds.PixelSpacing]
        source = "pydicom-data 693_UNCR.dcm (512x512 head CT, HU)"
    else:  # pydicom's own 128x128 CT, upsampled: same anatomy scale is not claimed
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        small = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        hu = ndimage.zoom(small.astype(np.float32), 4, order=1)
        spacing = [float(v) / 4 for v in ds.PixelSpacing]
        source = "FALLBACK: pydicom CT_small.dcm upsampled 4x (install pydicom-data)"
    arr = np.rint(hu).astype(np.int16)[np.newaxis]
    vol = Volume.from_spacing(arr, spacing=(5.0, spacing[0], spacing[1]), modality="CT")
    shape = vol.spatial_shape
    # In 693_UNCR: brain around (280, 260), skull at row 300 columns 138-152; in the
    # fallback the prompts still land on tissue (smoke only).
    brain, skull = _p(280, 260), _p(300, 145)
    head = (_p(130, 130), _p(450, 400))
    prompts = {
        "threshold": {"positive": (brain,), "params": {"low": 0, "high": 80}},
        "region-grow": {"positive": (brain,)},
        "watershed": {"positive": (brain,), "negative": (skull,)},
        "random-walker": {"foreground": _line(shape, slice(200, 360), 260), "box": head},
        "edge-fill": {"positive": (brain,)},
        "tissue-classes": {"positive": (brain,), "params": {"classes": 3}},
    }
    return Case("CT 512x512", vol, source, prompts)


def rgb_case(ct: Volume) -> Case:
    path = get_testdata_file("US1_UNCR.dcm", download=False)
    if path is not None:
        rgb = pydicom.dcmread(path).pixel_array
        source = "pydicom-data US1_UNCR.dcm (480x640 RGB ultrasound)"
        node, box = _p(250, 430), (_p(150, 320), _p(290, 545))
    else:
        grey = np.clip((ct.array[0].astype(np.float32) + 160) / 400 * 255, 0, 255)
        rgb = np.stack([grey, grey * 0.9, grey * 0.8], axis=-1).astype(np.uint8)
        source = "FALLBACK: the CT slice rendered to RGB (install pydicom-data)"
        node, box = _p(280, 260), (_p(130, 130), _p(450, 400))
    vol = Volume.from_spacing(rgb[np.newaxis], modality="US")
    prompts = {
        "threshold": {"positive": (node,), "box": box, "params": {"method": "otsu"}},
        "region-grow": {"positive": (node,)},
        "watershed": {"positive": (node,), "box": box},
        "random-walker": {"positive": (node,), "box": box},
        "edge-fill": {"positive": (node,), "box": box},
        "tissue-classes": {"positive": (node,), "box": box, "params": {"method": "gmm"}},
    }
    return Case(f"RGB {rgb.shape[0]}x{rgb.shape[1]}", vol, source, prompts)


def measure(engine_cls: type, case: Case, runs: int) -> dict[str, Any]:
    engine = engine_cls()
    request = EngineRequest(axis=0, index=0, **case.prompts[engine.name])
    walls: list[float] = []
    cpus: list[float] = []
    proposal = None
    for i in range(WARMUP + runs):
        c0, t0 = time.process_time(), time.perf_counter()
        proposal = run(engine, case.volume, request)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if i >= WARMUP:
            walls.append(wall)
            cpus.append(cpu)
    assert proposal is not None
    walls.sort()
    p50 = statistics.median(walls)
    return {
        "engine": engine.name,
        "image": case.name,
        "p50_s": round(p50, 4),
        "p95_s": round(walls[min(len(walls) - 1, round(0.95 * (len(walls) - 1)))], 4),
        "min_s": round(walls[0], 4),
        "max_s": round(walls[-1], 4),
        "cpu_p50_s": round(statistics.median(cpus), 4),
        "meets_target": p50 <= TARGET_S,
        "pixels": int(proposal.mask.sum()),
        "prompt": {k: v for k, v in proposal.prompt.items() if k not in ("axis", "index")},
        "info": proposal.info,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="measured runs per engine")
    parser.add_argument("--quick", action="store_true", help="smoke check: 5 runs")
    parser.add_argument(
        "--max-wait", type=float, default=60.0, help="seconds to wait for a quiet machine"
    )
    parser.add_argument("--out", default=None, help="result name (default classical)")
    args = parser.parse_args()
    if args.quick:
        args.runs = 5
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.simplefilter("ignore", UserWarning)  # pydicom's notes on the test files

    ct = ct_case()
    cases = [ct, rgb_case(ct.volume)]
    quiet = wait_for_quiet(args.max_wait)
    load = MachineLoad().start()
    own0 = time.process_time()
    t0 = time.monotonic()
    results = []
    for case in cases:
        log.info("%s: %s", case.name, case.source)
        for engine_cls in ENGINES:
            r = measure(engine_cls, case, args.runs)
            log.info(
                "  %-15s p50 %6.1f ms  p95 %6.1f ms  (cpu %6.1f ms)  %d px",
                r["engine"],
                r["p50_s"] * 1000,
                r["p95_s"] * 1000,
                r["cpu_p50_s"] * 1000,
                r["pixels"],
            )
            results.append(r)
    elapsed = time.monotonic() - t0
    other = max(0.0, load.cores() - (time.process_time() - own0) / elapsed)
    rows = [
        [
            r["engine"],
            r["image"],
            f"{r['p50_s'] * 1000:.1f}",
            f"{r['p95_s'] * 1000:.1f}",
            f"{r['cpu_p50_s'] * 1000:.1f}",
            "yes" if r["meets_target"] else "NO",
        ]
        for r in results
    ]
    header = ["engine", "image", "p50 ms", "p95 ms", "cpu p50 ms", "p50 ≤ 100 ms"]
    print(table(rows, header))
    print(f"\nother processes used {other:.2f} CPU cores on average meanwhile")
    payload = {
        "benchmark": "classical_engines",
        "machine": machine_info(),
        "settings": {
            "runs": args.runs,
            "warmup": WARMUP,
            "target_p50_s": TARGET_S,
            "images": {c.name: c.source for c in cases},
            "through": "medlabel.engines.runner.run (validation + engine), one thread",
        },
        "quiet_before": quiet,
        "other_load_cores": round(other, 2),
        "results": results,
        "all_meet_target": all(r["meets_target"] for r in results),
    }
    path = save_result(args.out or ("classical_quick" if args.quick else "classical"), payload)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
