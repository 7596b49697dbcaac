"""``medlabel train`` and ``medlabel predict``: models from plain folders of labelled
images, and predictions for a folder of images.

Thin over :mod:`medlabel.engines.deep.tasks`; torch loads only when a command runs.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from medlabel.cli.common import console, err_console, progress, reporting
from medlabel.core.errors import InvalidInputError


class BarReporter:
    """A training/prediction reporter that drives a Rich progress bar and prints log
    lines above it (interrupting with Ctrl-C stops the command)."""

    def __init__(self, bar: Progress, *, quiet: bool = False) -> None:
        self.bar = bar
        self.quiet = quiet
        self.task = bar.add_task("starting", total=None)
        self.lines: list[str] = []

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        kwargs: dict[str, Any] = {"completed": done, "total": total}
        if message is not None:
            kwargs["description"] = message
        self.bar.update(self.task, **kwargs)

    def log(self, line: str) -> None:
        self.lines.append(line)
        if not self.quiet:
            self.bar.console.print(line, highlight=False, markup=False)

    def check_cancelled(self) -> None:
        return None


def parse_options(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--option takes NAME=VALUE; got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def train(
    images: Annotated[Path, typer.Option("--images", help="Folder of images.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (new).")],
    task: Annotated[str, typer.Option("--task", help="seg, cls or det.")] = "seg",
    masks: Annotated[
        Path | None, typer.Option("--masks", help="seg: folder of masks, paired by file name.")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="cls/det: CSV (or JSON) of labels.")
    ] = None,
    mask_suffix: Annotated[
        str, typer.Option("--mask-suffix", help="Suffix of mask names, e.g. _1stHO.")
    ] = "",
    modality: Annotated[
        str | None, typer.Option("--modality", help="Modality of the images, e.g. CT or MR.")
    ] = None,
    val_fraction: Annotated[
        float,
        typer.Option("--val-fraction", min=0.0, max=0.9, help="Share held out for validation."),
    ] = 0.2,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Maximum epochs.")] = None,
    minutes: Annotated[
        float | None, typer.Option("--minutes", min=0.01, help="Training time budget.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (recorded).")] = 0,
    arch: Annotated[
        str, typer.Option("--arch", help="auto, unet, dynunet or medsam-decoder (seg).")
    ] = "auto",
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    patience: Annotated[
        int | None, typer.Option("--patience", min=1, help="Epochs without improvement.")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads.")] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="No augmentation.")] = False,
    no_onnx: Annotated[bool, typer.Option("--no-onnx", help="Do not export ONNX.")] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", help="Where encoder embeddings are cached (medsam)."),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="Plan override NAME=VALUE (JSON), e.g. patch_size=[64,64]."),
    ] = None,
) -> None:
    """Train a model on a folder of labelled images and write it to a model folder."""
    with reporting():
        _train(
            images=images,
            out=out,
            task=task,
            masks=masks,
            labels=labels,
            mask_suffix=mask_suffix,
            modality=modality,
            config_kwargs={
                "seed": seed,
                "epochs": epochs,
                "minutes": minutes,
                "val_fraction": val_fraction,
                "arch": arch,
                "batch_size": batch_size,
                "patience": patience,
                "threads": threads,
                "augment": not no_augment,
                "onnx": not no_onnx,
            },
            options={
                **parse_options(option or []),
                **({"cache_dir": str(cache_dir)} if cache_dir else {}),
            },
        )


def _train(
    *,
    images: Path,
    out: Path,
    task: str,
    masks: Path | None,
    labels: Path | None,
    mask_suffix: str,
    modality: str | None,
    config_kwargs: dict[str, Any],
    options: dict[str, Any],
) -> None:
    from pydantic import ValidationError

    from medlabel.engines.deep.model_dir import TrainingConfig, prepare_directory
    from medlabel.engines.deep.tasks import FolderSource, get_task

    try:
        config = TrainingConfig(**config_kwargs, options=options)
    except ValidationError as exc:
        raise InvalidInputError(str(exc)) from None
    trainer = get_task(task)
    existed = out.exists()
    prepare_directory(out)
    t0 = time.perf_counter()
    try:
        with progress() as bar:
            reporter = BarReporter(bar)
            source = FolderSource(
                images=images,
                masks=masks,
                labels=labels,
                mask_suffix=mask_suffix,
                modality=modality,
            )
            data = trainer.dataset_from_folder(source, reporter)
            trained = trainer.train(data, config, reporter)
            reporter.progress(0, None, "saving")
            card = trained.save(out)
    except BaseException:
        if not existed and out.is_dir() and not any(out.iterdir()):
            shutil.rmtree(out, ignore_errors=True)
        raise
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in card.validation.items()) or "no validation"
    onnx = f", ONNX {card.onnx.file_bytes / 1e6:.1f} MB" if card.onnx else ""
    console.print(
        f"{card.task.value} model ({card.architecture.name}, {card.parameters:,} parameters"
        f"{onnx}) written to {out}\n"
        f"  {card.epochs_run} epoch(s), best {card.best_epoch} ({card.stop_reason}), "
        f"{(time.perf_counter() - t0) / 60:.1f} min\n"
        f"  validation: {metrics}",
        highlight=False,
    )


def predict(
    model: Annotated[Path, typer.Option("--model", "-m", help="Model folder (medlabel train).")],
    images: Annotated[Path, typer.Option("--images", help="Folder of images.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the predictions.")],
    backend: Annotated[
        str, typer.Option("--backend", help="auto, torch or onnx (ONNX Runtime).")
    ] = "auto",
) -> None:
    """Predict every image of a folder: masks with the images' names and geometry."""
    with reporting():
        from medlabel.engines.deep.datasets import list_images
        from medlabel.engines.deep.model_dir import ModelCard
        from medlabel.engines.deep.tasks import get_task

        card = ModelCard.read(model)
        files = list_images(images)
        if out.exists() and not out.is_dir():
            raise InvalidInputError(f"{out} is a file; give a folder for the predictions")
        trainer = get_task(card.task)
        loaded = trainer.load(model, card, backend=backend)
        t0 = time.perf_counter()
        with progress() as bar:
            reporter = BarReporter(bar)
            written = trainer.predict_files(loaded, files, out, reporter)
        seconds = time.perf_counter() - t0
    rate = len(written) / seconds if seconds > 0 else float("inf")
    err_console.print(
        f"backend {getattr(loaded, 'backend', 'torch')}: {rate:.2f} image(s)/s", highlight=False
    )
    console.print(f"{len(written)} prediction(s) written to {out}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``predict`` to the ``medlabel`` command."""
    app.command("train")(train)
    app.command("predict")(predict)
