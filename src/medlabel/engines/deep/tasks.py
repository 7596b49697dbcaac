"""Trainable tasks: segmentation, classification, detection, behind one small interface.

A task is a :class:`TaskTrainer`: it reads a labelled folder into a :class:`TrainingSet`,
trains on a training set with a :class:`~medlabel.engines.deep.model_dir.TrainingConfig`
while reporting to a :class:`Reporter`, loads a model directory for prediction and writes
predictions for a folder of images. :func:`get_task` returns the trainer of a task, or
names the extra to install when torch is missing.

The same trainer runs inside a background job (the job system's reporter,
:class:`medlabel.jobs.reporter.Reporter`, has this shape) and from the command line
(a Rich progress bar). Nothing here imports torch.

Example, outside the job system::

    from medlabel.engines.deep.tasks import FolderSource, LoggingReporter, get_task
    task = get_task("seg")
    data = task.dataset_from_folder(FolderSource(images=Path("img"), masks=Path("msk")))
    trained = task.train(data, TrainingConfig(seed=1, minutes=5), LoggingReporter())
    trained.save(Path("model"))
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from medlabel.core.errors import InvalidInputError, MissingDependencyError, NotFoundError
from medlabel.engines.deep.model_dir import (
    LoadedModel,
    ModelCard,
    TaskKind,
    TrainingConfig,
)
from medlabel.imaging.volume import Volume

log = logging.getLogger(__name__)

#: the extra that installs what training needs (torch, MONAI, ...)
TRAIN_EXTRA = "train"


# reporting -----------------------------------------------------------------------------
@runtime_checkable
class Reporter(Protocol):
    """Progress, log lines and cancellation: the shape of the job system's reporter.

    ``check_cancelled`` raises (the job system's ``JobCancelled``) when the work should
    stop; trainers call it between batches and leave through ``finally`` blocks.
    """

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """``done`` of ``total`` units finished; ``message`` None keeps the last one."""
        ...

    def log(self, line: str) -> None:
        """A line for the job's log."""
        ...

    def check_cancelled(self) -> None:
        """Raise if the work should stop."""
        ...


class LoggingReporter:
    """A reporter that writes log lines to :mod:`logging` and ignores progress (for
    library use and tests)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log
        self.lines: list[str] = []

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        return None

    def log(self, line: str) -> None:
        self.lines.append(line)
        self._log.info("%s", line)

    def check_cancelled(self) -> None:
        return None


# data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Example:
    """One labelled image.

    Parameters
    ----------
    name
        Identifier recorded in the model card (file stem, or image id in a project).
    image
        The image with its geometry.
    target
        Segmentation: integer label array on the image's grid ``(planes, rows,
        columns)``, 0 background. Classification: the class value (``int``).
        Detection: boxes, as that task defines them.
    revision
        The annotation revision the target comes from (projects), recorded in the card.
    split
        ``"train"`` or ``"val"`` to fix the split; ``None`` lets the trainer draw it.
    """

    name: str
    image: Volume
    target: Any
    revision: str | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        if self.split not in (None, "train", "val"):
            raise ValueError(f"split must be 'train', 'val' or None, got {self.split!r}")


@dataclass
class TrainingSet:
    """Examples of one task, the label/class names and where they came from.

    ``labels`` maps label values (segmentation, background 0 included or not) or class
    values to names; ``source`` is recorded in the card (a folder, ``project:<id>``).
    """

    task: TaskKind
    examples: Sequence[Example]
    labels: dict[int, str] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if not self.examples:
            raise InvalidInputError("no training examples")
        names = [e.name for e in self.examples]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})[:3]
            raise InvalidInputError(f"example names must be unique; repeated: {dup}")


@dataclass(frozen=True)
class FolderSource:
    """A labelled folder as ``medlabel train`` names it.

    ``images`` with ``masks`` (segmentation; mask names may end with ``mask_suffix``) or
    ``labels`` (a CSV for classification, a CSV/JSON of boxes for detection).
    """

    images: Path
    masks: Path | None = None
    labels: Path | None = None
    mask_suffix: str = ""
    #: DICOM modality of raster/NIfTI images when known (``CT`` changes normalisation)
    modality: str | None = None


@dataclass
class TrainedModel:
    """A trained network with its card, not yet on disk.

    ``module`` (a ``torch.nn.Module``) is what ``weights.pt`` stores and what the card's
    architecture rebuilds. ``onnx_module`` is what ``model.onnx`` would hold (default:
    ``module``; a model on a frozen pretrained encoder exports encoder and head
    together), fed with float32 input of ``onnx_shape`` (default ``[1, channels,
    *patch_size]`` from the card; the batch axis is dynamic).
    """

    card: ModelCard
    module: Any
    onnx_module: Any = None
    onnx_shape: list[int] | None = None

    def save(self, directory: Path, *, onnx: bool | None = None) -> ModelCard:
        """Write the model directory; export ONNX when asked (default: the card's
        ``training.onnx``) and onnx/onnxruntime are installed. Returns the final card."""
        from medlabel.engines.deep.model_dir import save_model

        card = save_model(directory, self.card, self.module)
        want = card.training.onnx if onnx is None else onnx
        if want:
            from medlabel.engines.deep.onnx_export import export_if_available

            shape = self.onnx_shape or [1, card.input.channels, *card.input.patch_size]
            module = self.onnx_module if self.onnx_module is not None else self.module
            card = export_if_available(Path(directory), card, module, shape)
        self.card = card
        return card


# the task interface ----------------------------------------------------------------------
@runtime_checkable
class TaskTrainer(Protocol):
    """What every trainable task implements."""

    task: TaskKind

    def dataset_from_folder(
        self, source: FolderSource, reporter: Reporter | None = None
    ) -> TrainingSet:
        """Read a labelled folder; raise ``InvalidInputError`` naming unmatched or
        unreadable files."""
        ...

    def train(self, data: TrainingSet, config: TrainingConfig, reporter: Reporter) -> TrainedModel:
        """Train a model (self-configured from ``data``); the best epoch's weights."""
        ...

    def load(self, directory: Path, card: ModelCard, *, backend: str = "auto") -> LoadedModel:
        """The model of ``directory`` ready to predict (``backend``: auto, torch, onnx)."""
        ...

    def predict_files(
        self, model: LoadedModel, images: Sequence[Path], out: Path, reporter: Reporter
    ) -> list[Path]:
        """Predict each image and write the results into ``out``: segmentation masks with
        the input's file name and geometry; classes and boxes as CSV/JSON. Returns the
        files written."""
        ...


@dataclass(frozen=True)
class _Entry:
    module: str
    attribute: str
    #: importable modules the task needs, checked without importing them
    needs: tuple[str, ...]


_TASKS: dict[TaskKind, _Entry] = {
    TaskKind.SEG: _Entry(
        "medlabel.engines.deep.segmentation", "SegmentationTask", ("torch", "monai")
    ),
    TaskKind.CLS: _Entry("medlabel.engines.deep.classification", "ClassificationTask", ("torch",)),
    TaskKind.DET: _Entry("medlabel.engines.deep.detection", "DetectionTask", ("torch",)),
}


def parse_task(task: str | TaskKind) -> TaskKind:
    """``"seg"``/``"cls"``/``"det"`` as :class:`TaskKind`, or a message naming them.

    Examples
    --------
    >>> parse_task("seg")
    <TaskKind.SEG: 'seg'>
    """
    try:
        return TaskKind(task)
    except ValueError:
        known = ", ".join(t.value for t in TaskKind)
        raise InvalidInputError(f"unknown task {task!r}; choose one of {known}") from None


def task_available(task: str | TaskKind) -> bool:
    """Whether the task's code and its optional packages are installed (nothing imported)."""
    entry = _TASKS[parse_task(task)]
    return all(importlib.util.find_spec(m) is not None for m in (*entry.needs, entry.module))


def get_task(task: str | TaskKind) -> TaskTrainer:
    """The trainer of ``task``.

    Raises
    ------
    InvalidInputError
        Unknown task name.
    MissingDependencyError
        torch/MONAI are not installed: names ``pip install 'medlabel[train]'``.
    NotFoundError
        This medlabel has no trainer for the task yet.
    """
    kind = parse_task(task)
    entry = _TASKS[kind]
    for module in entry.needs:
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(
                f"training and predicting {kind.value} models needs the optional package "
                f"{module!r}: install it with `pip install 'medlabel[{TRAIN_EXTRA}]'`"
            )
    if importlib.util.find_spec(entry.module) is None:
        raise NotFoundError(
            f"the {kind.value} task is not available yet in this version of medlabel"
        )
    cls = getattr(importlib.import_module(entry.module), entry.attribute)
    trainer: TaskTrainer = cls()
    return trainer
