"""``medlabel bench learn``: learning curves of an active-learning strategy against random
(see :mod:`medlabel.active.simulation`)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from medlabel import __version__
from medlabel.cli.common import console, err_console, progress, reporting
from medlabel.cli.train import parse_options
from medlabel.core.errors import InvalidInputError


def _steps(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(f"--steps takes integers like 10,20,40,80; got {text!r}") from None


def learn(
    images: Annotated[Path, typer.Option("--images", help="Folder of training images.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON report to write.")],
    task: Annotated[str, typer.Option("--task", help="seg or cls.")] = "seg",
    masks: Annotated[Path | None, typer.Option("--masks", help="seg: folder of masks.")] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="cls: CSV of classes.")] = None,
    test_images: Annotated[
        Path | None,
        typer.Option("--test-images", help="Test images (default: 20% of --images held out)."),
    ] = None,
    test_masks: Annotated[
        Path | None, typer.Option("--test-masks", help="seg: test masks.")
    ] = None,
    test_labels: Annotated[
        Path | None, typer.Option("--test-labels", help="cls: test classes CSV.")
    ] = None,
    mask_suffix: Annotated[str, typer.Option("--mask-suffix", help="Suffix of mask names.")] = "",
    strategy: Annotated[
        str,
        typer.Option("--strategy", "-s", help="Strategy compared with random, e.g. uncertainty."),
    ] = "uncertainty-diversity",
    steps: Annotated[
        str, typer.Option("--steps", help="Labelled cases after each round.")
    ] = "10,20,40,80",
    minutes: Annotated[
        float | None, typer.Option("--minutes", min=0.01, help="Training budget per round.")
    ] = 3.0,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Epochs per round.")] = None,
    arch: Annotated[str, typer.Option("--arch", help="Architecture (auto: self-configured).")] = (
        "auto"
    ),
    pool: Annotated[
        int, typer.Option("--pool", min=0, help="Unlabelled cases scored per round (0: all).")
    ] = 200,
    uncertainty: Annotated[
        str,
        typer.Option(
            "--uncertainty",
            help="How pre-annotation measures uncertainty: tta (flips), mc-dropout "
            "(8 passes with dropout on; models trained with dropout) or auto (mc-dropout "
            "when the model has dropout, else tta). Diversity uses the model's features.",
        ),
    ] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed of draws and training.")] = 0,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads.")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="Plan override NAME=VALUE (JSON), as for train."),
    ] = None,
) -> None:
    """Simulate the labelling loop: train on k cases, pre-annotate, add the cases the
    strategy picks, repeat; Dice (seg) or AUC (cls) against labelled cases, next to the
    same loop with random picks."""
    with reporting():
        _learn(
            images=images,
            out=out,
            task=task,
            masks=masks,
            labels=labels,
            test=(test_images, test_masks, test_labels),
            mask_suffix=mask_suffix,
            strategy=strategy,
            steps=_steps(steps),
            training={
                "seed": seed,
                "minutes": minutes,
                "epochs": epochs,
                "arch": arch,
                "threads": threads,
                "onnx": False,
                "options": parse_options(option or []),
            },
            pool=pool or None,
            uncertainty=uncertainty,
        )


def _learn(
    *,
    images: Path,
    out: Path,
    task: str,
    masks: Path | None,
    labels: Path | None,
    test: tuple[Path | None, Path | None, Path | None],
    mask_suffix: str,
    strategy: str,
    steps: tuple[int, ...],
    training: dict[str, Any],
    pool: int | None,
    uncertainty: str = "auto",
) -> None:
    from pydantic import ValidationError

    from medlabel.active.simulation import CurveSettings, compare, run_curve
    from medlabel.active.strategies import StrategyName, make_strategy
    from medlabel.cli.train import BarReporter
    from medlabel.engines.deep.model_dir import TaskKind, TrainingConfig
    from medlabel.engines.deep.tasks import FolderSource, get_task, parse_task

    kind = parse_task(task)
    if kind not in (TaskKind.SEG, TaskKind.CLS):
        raise InvalidInputError("bench learn takes --task seg or cls")
    try:
        make_strategy(strategy)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    try:
        settings = CurveSettings(
            steps=steps,
            seed=int(training["seed"]),
            pool=pool,
            uncertainty=uncertainty,
            training=TrainingConfig(**training),
        )
    except ValidationError as exc:
        raise InvalidInputError(str(exc)) from None
    trainer = get_task(kind)
    test_images, test_masks, test_labels = test
    strategies = [StrategyName.RANDOM.value] + ([strategy] if strategy != "random" else [])
    curves: dict[str, Any] = {}
    started = time.time()
    with progress() as bar:
        reporter = BarReporter(bar, quiet=True)
        data = trainer.dataset_from_folder(
            FolderSource(images, masks=masks, labels=labels, mask_suffix=mask_suffix), reporter
        )
        if test_images is not None:
            test_set = trainer.dataset_from_folder(
                FolderSource(
                    test_images, masks=test_masks, labels=test_labels, mask_suffix=mask_suffix
                ),
                reporter,
            ).examples
            train = data
        else:
            train, test_set = _hold_out(data, settings.seed)
        for name in strategies:

            def show(r: Any, name: str = name) -> None:
                shown = ", ".join(f"{k} {v:.4f}" for k, v in r.metrics.items())
                bar.console.print(
                    f"{name}: {r.labelled} labelled → {shown} "
                    f"({r.train_wall_minutes:.1f} min training)",
                    highlight=False,
                )

            curves[name] = run_curve(
                trainer, train, test_set, name, settings, reporter, on_round=show
            )
    metric = "mean_dice" if kind == TaskKind.SEG else "auc"
    comparison = compare(curves, metric)
    report: dict[str, Any] = {
        "benchmark": "learning_curve",
        "task": kind.value,
        "images": str(images),
        "training_cases": len(train.examples),
        "test_cases": len(test_set),
        "metric": metric,
        "settings": {
            "steps": list(steps),
            "seed": settings.seed,
            "pool": settings.pool,
            "tta": settings.tta,
            "uncertainty": settings.uncertainty,
            "training": settings.training.model_dump(mode="json"),
        },
        "strategies": {k: [r.as_dict() for r in v] for k, v in curves.items()},
        "comparison": comparison,
        "minutes": round((time.time() - started) / 60, 1),
        "machine": {
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
            "nproc": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "medlabel": __version__,
        },
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
    except OSError as exc:
        err_console.print(f"[bold red]error:[/] cannot write {out}: {exc.strerror}")
        raise typer.Exit(1) from None
    for row in comparison:
        cells = ", ".join(f"{k} {v}" for k, v in row.items() if k != "labelled")
        console.print(f"{row['labelled']:>4} labelled: {cells}", highlight=False)
    console.print(f"report: {out}", highlight=False)


def _hold_out(data: Any, seed: int) -> tuple[Any, list[Any]]:
    """20% of the cases (at least one) as the test set, drawn with ``seed``."""
    import numpy as np

    from medlabel.engines.deep.tasks import TrainingSet

    examples = list(data.examples)
    if len(examples) < 5:
        raise InvalidInputError(
            f"{len(examples)} labelled cases are too few to hold out a test set; give --test-images"
        )
    order = np.random.default_rng(seed).permutation(len(examples))
    n_test = max(1, round(0.2 * len(examples)))
    test = [examples[i] for i in sorted(order[:n_test])]
    train = [examples[i] for i in sorted(order[n_test:])]
    return TrainingSet(data.task, train, data.labels, source=data.source), test
