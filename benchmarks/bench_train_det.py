"""Training a box detector: Kvasir-SEG polyps with the official boxes
(``kavsir_bboxes.json``, given for the original image sizes and scaled here to the
384×288 images). The held-out rule is the segmentation benchmark's
(``bench_train_seg.py kvasir``): the **last 100 file names in sorted order** are tested,
the first 900 train (``--val-fraction`` of them, default 0.1, pick the best epoch).

Reported: AP50 (:func:`medlabel.quality.boxes.average_precision`, COCO 101-point, all
predictions with score ≥ 0.01), training minutes, prediction images/s. Wall-clock time on
this shared 2-core machine depends on what else runs: the script records this
process's CPU seconds and the cores other processes used meanwhile.

Example::

    nice -n 15 .venv/bin/python benchmarks/bench_train_det.py --data /work/shared/data \\
        --minutes 15
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MachineLoad, machine_info, save_result
from medlabel.engines.deep.datasets import read_image
from medlabel.engines.deep.det_data import detection_set
from medlabel.engines.deep.model_dir import ModelCard, TrainingConfig
from medlabel.engines.deep.tasks import (
    FolderSource,
    LoggingReporter,
    TrainingSet,
    get_task,
)
from medlabel.quality.boxes import average_precision

log = logging.getLogger("bench_train_det")
BASELINE = (
    "none recorded: the shared data README lists segmentation baselines only for Kvasir-SEG; "
    "published detection figures use other splits and were not checked offline"
)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/medlabel-bench-det"))
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--option", action="append", default=[], help="NAME=JSON option")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tag = f"_{args.tag}" if args.tag else ""
    root = args.data / "kvasir_seg"
    source = FolderSource(images=root / "images", labels=root / "kavsir_bboxes.json")
    everything = detection_set(source)
    ordered = sorted(everything.examples, key=lambda e: e.name)
    train_ex, test_ex = ordered[:-100], ordered[-100:]
    options: dict[str, Any] = {}
    for item in args.option:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    config = TrainingConfig(
        seed=args.seed,
        epochs=args.epochs,
        minutes=args.minutes,
        val_fraction=args.val_fraction,
        threads=args.threads,
        options=options,
    )
    data = TrainingSet(everything.task, train_ex, everything.labels, everything.source)
    task = get_task("det")
    meter = MachineLoad().start()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    trained = task.train(data, config, LoggingReporter())
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    other = max(0.0, meter.cores() - cpu / max(wall, 1e-6))
    model_dir = args.work / f"kvasir{tag}"
    card = trained.save(model_dir)
    model: Any = task.load(model_dir, ModelCard.read(model_dir), backend="torch")
    model.card.inference["min_score"] = 0.01  # AP needs the low-scored boxes too
    preds, scores, refs = [], [], []
    t1 = time.perf_counter()
    for e in test_ex:
        boxes = model.predict(read_image(root / "images" / f"{e.name}.jpg"))
        preds.append(np.array([[b.xmin, b.ymin, b.xmax, b.ymax] for b in boxes]).reshape(-1, 4))
        scores.append(np.array([b.score for b in boxes]))
        refs.append(e.target.boxes)
    pred_s = time.perf_counter() - t1
    ap50 = average_precision(preds, scores, refs, iou_threshold=0.5)
    ap50_voc = average_precision(preds, scores, refs, iou_threshold=0.5, interpolation="all_points")
    top1 = [p[:1] for p in preds]
    ap50_top1 = average_precision(top1, [s[:1] for s in scores], refs, iou_threshold=0.5)
    result = {
        "benchmark": "train_det",
        "dataset": "kvasir_seg",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "split": {
            "train": len(train_ex),
            "test": len(test_ex),
            "rule": "last 100 sorted file names held out (as bench_train_seg.py kvasir)",
        },
        "baseline": BASELINE,
        "test": {
            "ap50": round(ap50, 4),
            "ap50_all_points": round(ap50_voc, 4),
            "ap50_top1_box": round(ap50_top1, 4),
            "reference_boxes": int(sum(len(r) for r in refs)),
            "predicted_boxes": int(sum(len(p) for p in preds)),
            "images_per_second": round(len(test_ex) / pred_s, 1),
        },
        "training": {
            "wall_minutes": round(wall / 60, 2),
            "cpu_minutes": round(cpu / 60, 2),
            "idle_equivalent_minutes": round(cpu / 60 / args.threads, 2),
            "other_load_cores": round(other, 2),
            "epochs_run": card.epochs_run,
            "best_epoch": card.best_epoch,
            "stop_reason": card.stop_reason,
            "validation": card.validation,
            "parameters": card.parameters,
            "history": [h.model_dump() for h in card.history],
        },
        "plan": card.plan,
        "config": config.model_dump(mode="json"),
    }
    print(json.dumps(result["test"]), json.dumps(
        {k: v for k, v in result["training"].items() if k != "history"}))  # fmt: skip
    print(f"saved {save_result(f'train_det{tag}', result)}")


if __name__ == "__main__":
    main()
