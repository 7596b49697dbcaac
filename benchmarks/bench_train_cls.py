"""Training image classifiers: BreastMNIST (MedMNIST v2, 28×28 breast ultrasound, benign
or normal (1) vs malignant (0)) with its official splits: ``train`` (546) trains, ``val``
(78) picks the best epoch / the SVM's ``C``, ``test`` (156) is reported (AUC of the
probability of class 1, accuracy).

Models (``--arch``, repeatable): ``cnn`` (small ResNet from scratch), ``medsam-features``
(MLP on pooled frozen LiteMedSAM embeddings), ``hog-svm`` and ``hog-rf`` (classical
baseline). Published: ResNet-18 (28) AUC 0.901, ACC 0.863 (Yang et al. 2023).

Wall-clock time on this shared 2-core machine depends on what else runs: the script
records this process's CPU seconds and the cores other processes used meanwhile.

Example::

    nice -n 15 .venv/bin/python benchmarks/bench_train_cls.py \\
        --data /work/shared/data --arch cnn --arch hog-svm --minutes 10
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
from medlabel.engines.deep.classification import class_metrics
from medlabel.engines.deep.model_dir import ModelCard, TaskKind, TrainingConfig
from medlabel.engines.deep.segmentation import as_volume
from medlabel.engines.deep.tasks import (
    Example,
    LoggingReporter,
    TrainingSet,
    get_task,
)

log = logging.getLogger("bench_train_cls")
BASELINE = "ResNet-18 (28): AUC 0.901, ACC 0.863; ResNet-50 (28) AUC 0.857 (Yang et al. 2023)"
TARGET_AUC = 0.88


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load(data: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    npz = np.load(data / "breastmnist" / "breastmnist.npz")
    return {s: (npz[f"{s}_images"], npz[f"{s}_labels"].ravel()) for s in ("train", "val", "test")}


def training_set(splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> TrainingSet:
    examples = []
    for split in ("train", "val"):
        images, labels = splits[split]
        for i, (img, lab) in enumerate(zip(images, labels, strict=True)):
            vol = as_volume(img, None, 2)
            examples.append(Example(f"{split}_{i:04d}", vol, int(lab), split=split))
    return TrainingSet(TaskKind.CLS, examples, {0: "malignant", 1: "benign/normal"}, "breastmnist")


def run(arch: str, args: argparse.Namespace, splits: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"baseline": False, "cache_dir": str(args.work / "embeddings")}
    for item in args.option:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    config = TrainingConfig(
        seed=args.seed,
        epochs=args.epochs,
        minutes=args.minutes,
        arch=arch,
        threads=args.threads,
        options=options,
    )
    task = get_task("cls")
    data = training_set(splits)
    meter = MachineLoad().start()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    trained = task.train(data, config, LoggingReporter())
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    other = max(0.0, meter.cores() - cpu / max(wall, 1e-6))
    model_dir = args.work / f"breastmnist_{arch}{args.tag}"
    card = trained.save(model_dir)
    model = task.load(model_dir, ModelCard.read(model_dir), backend="torch")
    images, labels = splits["test"]
    t1 = time.perf_counter()
    probs = np.stack([model.probabilities(img) for img in images])  # type: ignore[attr-defined]
    pred_s = time.perf_counter() - t1
    test = class_metrics(labels, probs)
    heat = model.explain(images[0])  # type: ignore[attr-defined]
    out = {
        "arch": arch,
        "architecture": card.architecture.model_dump(),
        "test": {k: round(v, 4) for k, v in test.items()},
        "validation": card.validation,
        "training": {
            "wall_minutes": round(wall / 60, 2),
            "cpu_minutes": round(cpu / 60, 2),
            "idle_equivalent_minutes": round(cpu / 60 / args.threads, 2),
            "other_load_cores": round(other, 2),
            "epochs_run": card.epochs_run,
            "best_epoch": card.best_epoch,
            "stop_reason": card.stop_reason,
        },
        "plan": card.plan,
        "inference": card.inference,
        "parameters": card.parameters,
        "test_images_per_second": round(len(images) / pred_s, 1),
        "saliency_shape": list(heat.shape),
        "config": config.model_dump(mode="json"),
    }
    print(arch, json.dumps(out["test"]), json.dumps(out["training"]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/medlabel-bench-cls"))
    ap.add_argument("--arch", action="append", default=[])
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--option", action="append", default=[], help="NAME=JSON option")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.tag = f"_{args.tag}" if args.tag else ""
    splits = load(args.data)
    arches = args.arch or ["hog-svm", "hog-rf", "cnn", "medsam-features"]
    result: dict[str, Any] = {
        "benchmark": "train_cls",
        "dataset": "breastmnist",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "split": {s: len(v[1]) for s, v in splits.items()},
        "baseline": BASELINE,
        "target_auc": TARGET_AUC,
        "models": [run(a, args, splits) for a in arches],
    }
    path = save_result(f"train_cls{args.tag}", result)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
