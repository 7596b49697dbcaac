"""Observer agreement on CHASE_DB1: the second observer's vessel masks evaluated against
the first observer's, inside the field of view, by ``medlabel eval``.

A check that medlabel's metrics are right: the literature reports the second observer's
agreement with the first (accuracy ≈0.955 inside the field of view), and the same
comparison run through ``medlabel eval`` should land on the same figures.

Data (``--data``, default ``/work/shared/data``): ``chase_db1/{training,test}/`` with
``1st_manual/Image_01L_1stHO.png``, ``2nd_manual/Image_01L_2ndHO.png``,
``images/Image_01L.jpg`` and ``fov_mask_heuristic/Image_01L.png`` — 28 images
(Fraz et al., IEEE TBME 2012; CC BY 4.0).

Field of view. CHASE_DB1 has no official FOV masks. Three variants are evaluated:

- ``heuristic`` (headline): the third-party FOV masks shipped with the data;
- ``derived``: made here from each photograph as is customary for fundus images — the
  red channel above 15 (of 255; the camera's dark border stays below ~10 in these
  JPEGs), opened twice to remove compression specks, holes filled, largest connected
  component kept;
- ``none``: every pixel of the 999×960 image (the black border inflates accuracy and
  specificity; shown for contrast).

Each variant is one ``medlabel eval --pairs CSV --out DIR`` run (the CLI called in
process), with a pairs CSV listing the 28 images. The per-image figures of the headline
run are cross-checked against scikit-learn's ``accuracy_score``/``recall_score`` on the
FOV pixels when scikit-learn is installed.

Results: ``results/observers_chase.json`` and the headline report (HTML, JSON, CSV) in
``results/observers_chase/``.

Usage::

    python benchmarks/bench_observers.py
    python benchmarks/bench_observers.py --data /path/to/data --no-save
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from common import RESULTS_DIR, machine_info, save_result, table
from medlabel.cli.main import app

#: second observer vs first, CHASE_DB1, inside the FOV (Fraz et al. 2012, Table V)
PUBLISHED = {
    "accuracy": 0.9545,
    "sensitivity": 0.7425,
    "specificity": 0.9793,
    "source": (
        "Fraz MM et al., An ensemble classification-based approach applied to retinal "
        "blood vessel segmentation, IEEE TBME 59(9):2538-2548, 2012 (2nd human observer "
        "on CHASE_DB1); data README: accuracy ≈0.955"
    ),
}
METRICS = ("accuracy", "sensitivity", "specificity", "dice", "precision", "hd95")
RED_THRESHOLD = 15


def derive_fov(photo: Path) -> np.ndarray:
    """Field of view of a fundus photograph (see the module docstring)."""
    red = np.asarray(Image.open(photo).convert("RGB"))[..., 0]
    fov = ndimage.binary_fill_holes(ndimage.binary_opening(red > RED_THRESHOLD, iterations=2))
    labels, n = ndimage.label(fov)
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        fov = labels == sizes.argmax()
    return np.asarray(fov, dtype=bool)


def cases(data: Path) -> list[dict[str, Path]]:
    """The 28 images: both observers' masks, the photograph and the shipped FOV mask."""
    out = []
    for half in ("training", "test"):
        root = data / "chase_db1" / half
        for ref in sorted((root / "1st_manual").glob("*_1stHO.png")):
            name = ref.name.removesuffix("_1stHO.png")
            out.append(
                {
                    "name": Path(name),
                    "ref": ref,
                    "pred": root / "2nd_manual" / f"{name}_2ndHO.png",
                    "photo": root / "images" / f"{name}.jpg",
                    "fov": root / "fov_mask_heuristic" / f"{name}.png",
                }
            )
    return out


def write_pairs(path: Path, items: list[dict[str, Path]], roi: str, fov_dir: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "pred", "ref", "roi"])
        for c in items:
            name = str(c["name"])
            fov = {"heuristic": str(c["fov"]), "derived": str(fov_dir / f"{name}.png")}
            w.writerow([name, c["pred"], c["ref"], fov.get(roi, "")])


def run_eval(pairs: Path, out: Path, seed: int) -> dict[str, Any]:
    """``medlabel eval --pairs pairs --out out`` in this process; its report.json."""
    args = ["eval", "--pairs", str(pairs), "--out", str(out), "--seed", str(seed)]
    args += ["--label-names", "1=vessel", "--title", "CHASE_DB1: 2nd observer vs 1st"]
    try:
        app(args, standalone_mode=False)
    except SystemExit as exc:  # typer.Exit from a failed run
        if exc.code:
            raise
    data: dict[str, Any] = json.loads((out / "report.json").read_text())
    return data


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """Per-image and mean figures of label 1 from a report.json."""
    rows = [r for r in report["cases"] if r["label"] == 1]
    summary = next(s for s in report["summary"] if s["label"] == 1)["metrics"]
    return {
        "per_image": {r["case"]: {m: _f(r["metrics"][m]) for m in METRICS} for r in rows},
        "mean": {
            m: {k: _f(summary[m][k]) for k in ("mean", "sd", "ci_low", "ci_high", "n")}
            for m in METRICS
        },
    }


def _f(v: Any) -> Any:
    return float(v) if isinstance(v, str) else v  # "Infinity"/"NaN" strings of report.json


def sklearn_check(items: list[dict[str, Path]], per_image: dict[str, Any]) -> dict[str, Any]:
    """Largest difference to scikit-learn's accuracy and recall on the FOV pixels."""
    try:
        from sklearn.metrics import accuracy_score, recall_score
    except ImportError:
        return {"skipped": "scikit-learn not installed"}
    worst = {"accuracy": 0.0, "sensitivity": 0.0, "specificity": 0.0}
    for c in items:
        fov = np.asarray(Image.open(c["fov"])) > 0
        ref = np.asarray(Image.open(c["ref"]))[fov] > 0
        pred = np.asarray(Image.open(c["pred"]))[fov] > 0
        ours = per_image[str(c["name"])]
        theirs = {
            "accuracy": accuracy_score(ref, pred),
            "sensitivity": recall_score(ref, pred),
            "specificity": recall_score(~ref, ~pred),
        }
        for k, v in theirs.items():
            worst[k] = max(worst[k], abs(float(v) - ours[k]))
    return {"max_abs_difference": worst, "images": len(items)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-save", action="store_true", help="print only, write no results")
    args = parser.parse_args()

    items = cases(args.data)
    if len(items) != 28:
        raise SystemExit(f"expected 28 CHASE_DB1 images under {args.data}, found {len(items)}")
    facts = machine_info()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="chase_obs_") as tmp:
        work = Path(tmp)
        fov_dir = work / "fov_derived"
        fov_dir.mkdir()
        overlap = []
        for c in items:
            derived = derive_fov(c["photo"])
            Image.fromarray(derived.astype(np.uint8) * 255).save(fov_dir / f"{c['name']}.png")
            shipped = np.asarray(Image.open(c["fov"])) > 0
            overlap.append(float((derived & shipped).sum() / (derived | shipped).sum()))
        for roi in ("heuristic", "derived", "none"):
            pairs = work / f"pairs_{roi}.csv"
            write_pairs(pairs, items, roi, fov_dir)
            out = work / f"report_{roi}"
            t0 = time.perf_counter()
            report = run_eval(pairs, out, args.seed)
            wall = time.perf_counter() - t0
            results[roi] = figures(report) | {"wall_seconds": round(wall, 1)}
            print(f"{roi}: {report['n_cases']} images in {wall:.1f} s", file=sys.stderr)
            if roi == "heuristic" and not args.no_save:
                dest = RESULTS_DIR / "observers_chase"
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(out, dest)
    check = sklearn_check(items, results["heuristic"]["per_image"])

    rows = []
    for roi, r in results.items():
        m = r["mean"]
        rows.append(
            [roi]
            + [
                f"{m[k]['mean']:.4f} [{m[k]['ci_low']:.4f}, {m[k]['ci_high']:.4f}]"
                for k in ("accuracy", "sensitivity", "specificity", "dice")
            ]
        )
    rows.append(["published (Fraz 2012)"] + [
        f"{PUBLISHED[k]:.4f}" for k in ("accuracy", "sensitivity", "specificity")
    ] + ["–"])  # fmt: skip
    print(table(rows, ["field of view", "accuracy", "sensitivity", "specificity", "F1 = Dice"]))
    per = results["heuristic"]["per_image"]
    print()
    print(
        table(
            [[n, *(f"{v[k]:.4f}" for k in ("accuracy", "sensitivity", "specificity", "dice"))]
             for n, v in per.items()],
            ["image (heuristic FOV)", "accuracy", "sensitivity", "specificity", "F1 = Dice"],
        )
    )  # fmt: skip
    print(f"\nderived vs shipped FOV masks: IoU min {min(overlap):.4f}, mean "
          f"{np.mean(overlap):.4f}; scikit-learn cross-check: {check}")  # fmt: skip
    if not args.no_save:
        payload = {
            "benchmark": "observer agreement on CHASE_DB1 (2nd observer vs 1st)",
            "command": "python benchmarks/bench_observers.py",
            "equivalent_cli": (
                "medlabel eval --pairs pairs.csv --out DIR --seed 0 --label-names 1=vessel"
            ),
            "images": len(items),
            "published": PUBLISHED,
            "fov_variants": {
                "heuristic": "third-party FOV masks shipped with the data (headline)",
                "derived": f"red channel > {RED_THRESHOLD}, opened ×2, holes filled, largest "
                "component",
                "none": "all pixels",
            },
            "fov_derived_vs_heuristic_iou": {
                "min": round(min(overlap), 5),
                "mean": round(float(np.mean(overlap)), 5),
            },
            "sklearn_cross_check": check,
            "results": results,
            "machine": facts,
        }
        path = save_result("observers_chase", payload)
        print(f"wrote {path} and {RESULTS_DIR / 'observers_chase'}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
