"""Surface metrics (HD95 and normalised surface Dice) of medlabel next to MONAI's, on
pairs of 256×256×256 masks, in the same process.

Masks (built from real images that an installed package ships, never downloaded): the
MNI ICBM152 2009 white-matter probability map and T1 template in nilearn
(``nilearn/datasets/data``, 197×233×189 at 1 mm), resampled (linear) to 256×256×256, so
the voxels are 0.770 × 0.910 × 0.738 mm (anisotropic). Two pairs:

* ``wm-raters``: the reference is white matter where the probability is above 50 %; the
  prediction is the probability map smoothed (Gaussian, σ = 1.5 voxels) above 40 %, as a
  second rater who draws a smoother, slightly larger outline (Dice ≈ 0.9).
* ``wm-t1``: the same reference against white matter segmented from the T1 intensities
  (T1 above 175 of 255), a realistic automatic result that differs along the whole
  convoluted surface (Dice ≈ 0.8).

Timed, ``--repeats`` times each after one warm-up, in one thread of this process:

* medlabel ``surface_metrics`` (HD, HD95, ASSD and NSD from one computation of the
  surface distances), ``hd95`` alone and ``surface_dice`` alone;
* MONAI ``compute_hausdorff_distance(percentile=95)`` and ``compute_surface_dice`` on
  float tensors ``(1, 1, 256, 256, 256)`` prepared beforehand.

Reported: medians of the wall time and of this process's CPU time (the latter is less
disturbed when other jobs share the cores), the speed-up for "HD95 and NSD of a pair"
(MONAI's two calls against one ``surface_metrics`` call, and against ``hd95`` +
``surface_dice`` called separately), and the largest absolute difference of the values
(MONAI computes in float32).

Usage::

    python benchmarks/bench_metrics.py                # 5 repeats
    python benchmarks/bench_metrics.py --quick        # smoke check: 1 repeat, one pair
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from common import MachineLoad, machine_info, save_result, table, wait_for_quiet
from medlabel.quality.overlap import dice
from medlabel.quality.surface import hd95, surface_dice, surface_metrics

SIZE = 256
TOLERANCE_MM = 1.0
TARGET_SPEEDUP = 5.0

log = logging.getLogger("bench_metrics")


def _mni(name: str) -> tuple[np.ndarray, tuple[float, float, float]]:
    import nibabel as nib
    import nilearn

    path = (
        Path(nilearn.__file__).parent
        / "datasets"
        / "data"
        / f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz"
    )
    data = np.asanyarray(nib.load(path).dataobj).astype(np.float32)  # type: ignore[attr-defined]
    factors = [SIZE / n for n in data.shape]
    spacing = (data.shape[0] / SIZE, data.shape[1] / SIZE, data.shape[2] / SIZE)  # 1 mm input
    return ndimage.zoom(data, factors, order=1), spacing


def build_pairs() -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[float, ...], str]:
    wm, spacing = _mni("wm")
    t1, _ = _mni("t1")
    ref = wm > 127.5
    pairs = {
        "wm-raters": (ndimage.gaussian_filter(wm, 1.5) > 0.4 * 255, ref),
        "wm-t1": (t1 > 175, ref),
    }
    source = (
        f"nilearn MNI ICBM152 2009 WM probability map and T1 template, zoomed (linear) to {SIZE}^3"
    )
    return pairs, spacing, source


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float, list[float], Any]:
    """Median wall time, median CPU time of this process, the wall times, the result."""
    fn()  # warm-up (imports, caches)
    walls, cpus = [], []
    out = None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), walls, out


def measure(
    name: str, pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], repeats: int
) -> dict[str, Any]:
    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    p = torch.from_numpy(pred.astype(np.float32))[None, None]
    r = torch.from_numpy(ref.astype(np.float32))[None, None]
    sp = list(spacing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's deprecation notes
        t_mhd, c_mhd, runs_mhd, m_hd95 = _median_time(
            lambda: compute_hausdorff_distance(p, r, percentile=95, spacing=sp).item(), repeats
        )
        t_mnsd, c_mnsd, runs_mnsd, m_nsd = _median_time(
            lambda: compute_surface_dice(p, r, [TOLERANCE_MM], spacing=sp).item(), repeats
        )
    t_all, c_all, runs_all, ours = _median_time(
        lambda: surface_metrics(pred, ref, spacing, tolerance_mm=TOLERANCE_MM), repeats
    )
    t_hd, c_hd, runs_hd, ours_hd95 = _median_time(lambda: hd95(pred, ref, spacing), repeats)
    t_nsd, c_nsd, runs_nsd, ours_nsd = _median_time(
        lambda: surface_dice(pred, ref, TOLERANCE_MM, spacing), repeats
    )
    monai_pair = t_mhd + t_mnsd
    diff_hd95 = abs(ours.hd95 - m_hd95)
    diff_nsd = abs(ours.nsd - m_nsd)
    return {
        "pair": name,
        "pred_voxels": int(pred.sum()),
        "ref_voxels": int(ref.sum()),
        "dice": round(dice(pred, ref), 4),
        "values": {
            "medlabel": {
                "hd_mm": ours.hd,
                "hd95_mm": ours.hd95,
                "assd_mm": ours.assd,
                "nsd": ours.nsd,
            },
            "monai": {"hd95_mm": m_hd95, "nsd": m_nsd},
            "max_abs_diff_hd95_mm": diff_hd95,
            "max_abs_diff_nsd": diff_nsd,
            "separate_calls_equal": ours_hd95 == ours.hd95 and ours_nsd == ours.nsd,
        },
        "seconds_median": {
            "monai_hd95": round(t_mhd, 4),
            "monai_nsd": round(t_mnsd, 4),
            "monai_both": round(monai_pair, 4),
            "medlabel_surface_metrics": round(t_all, 4),
            "medlabel_hd95": round(t_hd, 4),
            "medlabel_surface_dice": round(t_nsd, 4),
        },
        "runs_s": {
            "monai_hd95": [round(v, 4) for v in runs_mhd],
            "monai_nsd": [round(v, 4) for v in runs_mnsd],
            "medlabel_surface_metrics": [round(v, 4) for v in runs_all],
            "medlabel_hd95": [round(v, 4) for v in runs_hd],
            "medlabel_surface_dice": [round(v, 4) for v in runs_nsd],
        },
        "cpu_seconds_median": {
            "monai_hd95": round(c_mhd, 4),
            "monai_nsd": round(c_mnsd, 4),
            "medlabel_surface_metrics": round(c_all, 4),
            "medlabel_hd95": round(c_hd, 4),
            "medlabel_surface_dice": round(c_nsd, 4),
        },
        "speedup_cpu": {
            "pair_one_pass": round((c_mhd + c_mnsd) / c_all, 2),
            "hd95_alone": round(c_mhd / c_hd, 2),
            "nsd_alone": round(c_mnsd / c_nsd, 2),
        },
        "speedup": {
            "pair_one_pass": round(monai_pair / t_all, 2),
            "pair_separate_calls": round(monai_pair / (t_hd + t_nsd), 2),
            "hd95_alone": round(t_mhd / t_hd, 2),
            "nsd_alone": round(t_mnsd / t_nsd, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each call")
    parser.add_argument("--quick", action="store_true", help="smoke check: 1 repeat, 1 pair")
    parser.add_argument(
        "--max-wait", type=float, default=120.0, help="seconds to wait for a quiet machine"
    )
    parser.add_argument("--out", default=None, help="result name (default metrics)")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    pairs, spacing, source = build_pairs()
    if args.quick:
        pairs = dict(list(pairs.items())[:1])
    log.info("%s; spacing %s mm", source, tuple(round(s, 4) for s in spacing))
    quiet = wait_for_quiet(args.max_wait)
    load = MachineLoad().start()
    own0 = time.process_time()
    t0 = time.monotonic()
    results = []
    for name, (pred, ref) in pairs.items():
        r = measure(name, pred, ref, spacing, args.repeats)
        log.info(
            "  %-9s MONAI %.3f s, medlabel %.3f s: %.1fx",
            name,
            r["seconds_median"]["monai_both"],
            r["seconds_median"]["medlabel_surface_metrics"],
            r["speedup"]["pair_one_pass"],
        )
        results.append(r)
    elapsed = time.monotonic() - t0
    other = max(0.0, load.cores() - (time.process_time() - own0) / elapsed)
    rows = []
    for r in results:
        s, v, x = r["seconds_median"], r["values"], r["speedup"]
        rows.append(
            [
                r["pair"],
                r["dice"],
                f"{s['monai_hd95']:.3f} + {s['monai_nsd']:.3f}",
                f"{s['medlabel_surface_metrics']:.3f}",
                f"{x['pair_one_pass']:.1f}x ({r['speedup_cpu']['pair_one_pass']:.1f}x)",
                f"{s['medlabel_hd95']:.3f} / {s['medlabel_surface_dice']:.3f}",
                f"{x['hd95_alone']:.1f}x / {x['nsd_alone']:.1f}x",
                f"{v['medlabel']['hd95_mm']:.4f}",
                f"{v['max_abs_diff_hd95_mm']:.1e}",
                f"{v['medlabel']['nsd']:.4f}",
                f"{v['max_abs_diff_nsd']:.1e}",
            ]
        )
    header = [
        "pair",
        "Dice",
        "MONAI HD95 + NSD s",
        "medlabel both s",
        "speed-up (CPU time)",
        "medlabel HD95 / NSD alone s",
        "speed-up alone",
        "HD95 mm",
        "|Δ HD95|",
        "NSD@1mm",
        "|Δ NSD|",
    ]
    print(table(rows, header))
    print(f"\nother processes used {other:.2f} CPU cores on average meanwhile")
    payload = {
        "benchmark": "surface_metrics_vs_monai",
        "machine": machine_info(),
        "settings": {
            "size": [SIZE] * 3,
            "spacing_mm": [round(s, 6) for s in spacing],
            "tolerance_mm": TOLERANCE_MM,
            "repeats": args.repeats,
            "warmup": 1,
            "source": source,
            "target_speedup": TARGET_SPEEDUP,
            "torch_threads": torch.get_num_threads(),
            "monai_input": "float32 tensors (1, 1, 256, 256, 256), prepared before timing",
        },
        "quiet_before": quiet,
        "other_load_cores": round(other, 2),
        "results": results,
    }
    path = save_result(args.out or ("metrics_quick" if args.quick else "metrics"), payload)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
