"""The on-disk model format shared by every trainable task (segmentation, classification,
detection).

A model is a directory::

    MODEL_DIR/
      model.json    the ModelCard: what the network is, what it expects, how it was trained
      weights.pt    the network's ``state_dict`` (``torch.save``; loaded with weights_only)
      model.onnx    optional: the same network exported to ONNX for fast CPU inference

The card alone is enough to rebuild the network (``architecture.name`` and
``architecture.params`` name a builder in :mod:`medlabel.engines.deep.networks`) and to
prepare an input the way training did (``input``: dimensionality, channels, target
spacing, patch size, intensity normalisation with its statistics). It also records how
the model came to be (training configuration with the seed, per-epoch history, best
epoch, validation metrics, the training data's identifiers, time), what it costs
(parameters, file sizes) and with which software it was made.

Reading is tolerant (unknown fields are ignored so that newer medlabel versions can add
some); writing is strict (every field is validated). This module does not import torch
at import time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medlabel import __version__
from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.core.ids import utcnow

if TYPE_CHECKING:
    from medlabel.imaging.volume import Volume

#: the card, the weights and the optional ONNX export inside a model directory
CARD_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"
ONNX_FILE = "model.onnx"
#: version of this layout; readers refuse newer ones
FORMAT_VERSION = 1


class TaskKind(StrEnum):
    """What a model predicts."""

    SEG = "seg"  # a label per voxel
    CLS = "cls"  # a class per image
    DET = "det"  # boxes with classes


class NormScheme(StrEnum):
    """How intensities are normalised before the network sees them.

    ``ct``: clip to ``clip`` (foreground percentiles of the training data, HU), then
    subtract ``mean`` and divide by ``std`` (foreground statistics of the training data).
    ``zscore``: each image by its own mean and standard deviation (MR and other
    uncalibrated greyscale), per channel. ``fixed``: subtract ``mean`` and divide by
    ``std`` per channel (values computed once on the training data; RGB photographs are
    first scaled to [0, 1]). ``none``: as read.
    """

    CT = "ct"
    ZSCORE = "zscore"
    FIXED = "fixed"
    NONE = "none"


class _Strict(BaseModel):
    """Strict when built in code, tolerant of unknown fields when read from a file."""

    model_config = ConfigDict(extra="ignore", frozen=False, validate_assignment=True)


class Normalisation(_Strict):
    """Intensity normalisation and its statistics (per channel where lists)."""

    scheme: NormScheme
    clip: tuple[float, float] | None = None
    mean: list[float] = Field(default_factory=list)
    std: list[float] = Field(default_factory=list)
    #: raster inputs (8-bit photographs) are divided by this first (255.0), else 1.0
    scale: float = 1.0

    def apply(self, image: np.ndarray, *, channel_axis: int = 0) -> np.ndarray:
        """Normalise ``image`` (float32 out); channels along ``channel_axis``.

        Examples
        --------
        >>> n = Normalisation(scheme="fixed", mean=[0.5], std=[0.25], scale=255.0)
        >>> n.apply(np.array([[[0, 255]]], np.uint8)).tolist()
        [[[-2.0, 2.0]]]
        """
        x = np.asarray(image, dtype=np.float32)
        if self.scale != 1.0:
            x = x / np.float32(self.scale)
        if self.scheme is NormScheme.NONE:
            return x
        if self.clip is not None:
            x = np.clip(x, self.clip[0], self.clip[1])
        x = np.moveaxis(x, channel_axis, 0)
        out = np.empty_like(x)
        for c in range(x.shape[0]):
            if self.scheme is NormScheme.ZSCORE:
                mean, std = float(x[c].mean()), float(x[c].std())
            else:
                mean = self.mean[c] if c < len(self.mean) else 0.0
                std = self.std[c] if c < len(self.std) else 1.0
            out[c] = (x[c] - mean) / max(std, 1e-8)
        return np.moveaxis(out, 0, channel_axis)


class InputSpec(_Strict):
    """What the network takes.

    Spatial lists (``target_spacing``, ``patch_size``) have one entry per spatial axis,
    ``(plane, row, column)`` for 3D and ``(row, column)`` for 2D; spacing in mm.
    """

    dims: Literal[2, 3]
    channels: int = Field(ge=1)
    modality: str = "OT"
    #: resample to this voxel size before the network (None: keep the image's grid)
    target_spacing: list[float] | None = None
    #: training patch / sliding-window size, or the fixed input size of a whole-image model
    patch_size: list[int]
    #: whole-image models: resize every image to ``patch_size`` (no sliding window)
    resize: bool = False
    normalisation: Normalisation

    @field_validator("patch_size")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(s < 1 for s in v):
            raise ValueError(f"patch_size must be positive integers, got {v}")
        return v


class LabelInfo(_Strict):
    """A label value (segmentation) or class index (classification/detection) and its name."""

    value: int
    name: str


class Architecture(_Strict):
    """Network builder name (see :mod:`medlabel.engines.deep.networks`) and its arguments."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingConfig(_Strict):
    """What the user (or the self-configuration) asked of training.

    ``None`` means "choose from the data"; the card records the values actually used in
    :attr:`ModelCard.plan`.
    """

    seed: int = 0
    #: maximum epochs
    epochs: int | None = Field(default=None, ge=1)
    #: wall-clock budget for training in minutes (stops after the epoch that exceeds it)
    minutes: float | None = Field(default=None, gt=0)
    val_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    #: epochs without improvement of the validation metric before stopping
    patience: int | None = Field(default=None, ge=1)
    #: ``auto`` or an architecture name the task offers
    arch: str = "auto"
    batch_size: int | None = Field(default=None, ge=1)
    learning_rate: float | None = Field(default=None, gt=0)
    #: torch intra-op threads (None: all cores, at most 4)
    threads: int | None = Field(default=None, ge=1)
    augment: bool = True
    #: export ``model.onnx`` after training when onnx/onnxruntime are installed
    onnx: bool = True
    #: task-specific options (e.g. ``largest_component`` for segmentation)
    options: dict[str, Any] = Field(default_factory=dict)


class EpochRecord(_Strict):
    """One epoch of training: losses, validation metrics, learning rate and time."""

    epoch: int
    train_loss: float
    val_loss: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    learning_rate: float
    seconds: float
    #: the cross-validation fold (1-based) of an ensemble's member, None for one network
    fold: int | None = None


class DataItem(_Strict):
    """An example the model saw: its name (file stem or image id) and, from a project,
    the annotation revision it used."""

    name: str
    revision: str | None = None


class DataRecord(_Strict):
    """The training and validation examples, as identifiers."""

    train: list[DataItem] = Field(default_factory=list)
    val: list[DataItem] = Field(default_factory=list)
    #: where the examples came from (a folder path, or ``project:<id>``)
    source: str = ""


class OnnxInfo(_Strict):
    """The ONNX export and how closely it matches the torch network."""

    file_bytes: int
    opset: int
    #: largest absolute difference of outputs on a check input (logits)
    max_abs_diff: float
    input_shape: list[int]
    #: milliseconds per forward pass of ``input_shape`` measured at export (median)
    torch_ms: float | None = None
    onnx_ms: float | None = None

    @property
    def faster(self) -> bool:
        """Whether ONNX Runtime ran the check input faster than torch."""
        return (
            self.onnx_ms is not None
            and self.torch_ms is not None
            and (self.onnx_ms < self.torch_ms)
        )


class ModelCard(_Strict):
    """Everything about a trained model except its weights (``model.json``).

    Attributes
    ----------
    task
        ``seg``, ``cls`` or ``det``.
    architecture
        Builder name and hyper-parameters; enough to rebuild the network.
    input
        Dimensionality, channels, target spacing, patch size, normalisation.
    labels
        Label values / classes with names (background 0 included for segmentation).
    training
        The configuration asked for (seed included).
    plan
        The values the self-configuration chose (batch size, epochs, learning rate,
        augmentation parameters, ...), JSON.
    inference
        Task-specific inference options (sliding-window overlap, post-processing).
    epochs_run, best_epoch, stop_reason, history
        How training went; the weights are the best epoch's.
    validation
        Validation metrics of the best epoch (e.g. ``dice_1``, ``mean_dice``).
    data
        Identifiers of the training and validation examples.
    training_seconds
        Wall-clock time of training (preprocessing included).
    parameters, weights_bytes, onnx
        Size of the network and of its files.
    versions
        medlabel, torch, monai, python versions that trained it.
    """

    format_version: int = FORMAT_VERSION
    task: TaskKind
    name: str = ""
    architecture: Architecture
    input: InputSpec
    labels: list[LabelInfo]
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    plan: dict[str, Any] = Field(default_factory=dict)
    inference: dict[str, Any] = Field(default_factory=dict)
    epochs_run: int = 0
    best_epoch: int = 0
    stop_reason: str = ""
    history: list[EpochRecord] = Field(default_factory=list)
    validation: dict[str, float] = Field(default_factory=dict)
    data: DataRecord = Field(default_factory=DataRecord)
    training_seconds: float = 0.0
    parameters: int = 0
    weights_bytes: int = 0
    onnx: OnnxInfo | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    created_at: dt.datetime = Field(default_factory=utcnow)

    @field_validator("format_version")
    @classmethod
    def _supported(cls, v: int) -> int:
        if v > FORMAT_VERSION:
            raise ValueError(
                f"model format {v} is newer than this medlabel reads ({FORMAT_VERSION}); "
                "upgrade medlabel"
            )
        return v

    @classmethod
    def read(cls, directory: Path) -> ModelCard:
        """Read ``directory/model.json``.

        Raises
        ------
        NotFoundError
            No model directory there.
        InvalidInputError
            The card is not valid JSON or misses required fields.
        """
        path = Path(directory) / CARD_FILE
        if not path.is_file():
            raise NotFoundError(
                f"{directory} is not a model directory (no {CARD_FILE}); "
                "train one with `medlabel train`"
            )
        try:
            return cls.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise InvalidInputError(f"{path}: not a valid model card ({exc})") from None

    def write(self, directory: Path) -> None:
        """Write ``directory/model.json`` (atomically: a temporary file renamed)."""
        path = Path(directory) / CARD_FILE
        _atomic_write(path, self.model_dump_json(indent=1).encode() + b"\n")

    def summary(self) -> dict[str, Any]:
        """A short JSON view for listings: task, architecture, labels, metrics, sizes."""
        return {
            "task": self.task.value,
            "name": self.name,
            "architecture": self.architecture.name,
            "labels": {str(lab.value): lab.name for lab in self.labels},
            "validation": self.validation,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "training_seconds": round(self.training_seconds, 1),
            "parameters": self.parameters,
            "weights_bytes": self.weights_bytes,
            "onnx": self.onnx is not None,
            "created_at": self.created_at.isoformat(),
        }


@runtime_checkable
class LoadedModel(Protocol):
    """A model read from its directory, ready to predict on one image.

    ``predict`` takes a :class:`~medlabel.imaging.volume.Volume` (its affine gives the
    spacing) or a bare array with ``spacing`` (mm per spatial axis; default 1 mm) and
    returns the task's result: for segmentation an integer label array on the input's
    grid ``(planes, rows, columns)``; classification and detection define their own.
    """

    card: ModelCard
    directory: Path

    def predict(self, image: Volume | np.ndarray, spacing: Sequence[float] | None = None) -> Any:
        """Predict on one image (see the class docstring)."""
        ...


def software_versions() -> dict[str, str]:
    """Versions of medlabel, Python, torch and MONAI (those installed), for the card."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"medlabel": __version__, "python": platform.python_version()}
    for dist in ("torch", "monai", "onnx", "onnxruntime"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def prepare_directory(directory: Path) -> Path:
    """Create ``directory`` for a new model; refuse a non-empty folder that is not one.

    An existing model directory is overwritten (its ``model.onnx`` removed, since a new
    export may not follow).

    Raises
    ------
    InvalidInputError
        The path is a file, or a non-empty folder without ``model.json``.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InvalidInputError(f"{directory} is a file; give a folder for the model")
    if directory.is_dir() and any(directory.iterdir()):
        if not (directory / CARD_FILE).is_file():
            raise InvalidInputError(
                f"{directory} is not empty and not a model directory; give a new folder"
            )
        (directory / ONNX_FILE).unlink(missing_ok=True)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create {directory}: {exc.strerror}") from None
    return directory


def save_model(directory: Path, card: ModelCard, module: Any) -> ModelCard:
    """Write ``weights.pt`` (the module's ``state_dict``) and ``model.json``.

    Fills ``parameters``, ``weights_bytes`` and ``versions`` in a copy of ``card`` and
    returns it. The weights are written first, the card last, so a directory with a card
    always has its weights.

    Parameters
    ----------
    directory
        New or empty folder, or an existing model directory to replace.
    card
        The card to write.
    module
        A ``torch.nn.Module``.
    """
    import torch

    directory = prepare_directory(directory)
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    torch.save(state, tmp)
    os.replace(tmp, directory / WEIGHTS_FILE)
    out = card.model_copy(deep=True)
    out.parameters = int(sum(p.numel() for p in module.parameters()))
    out.weights_bytes = (directory / WEIGHTS_FILE).stat().st_size
    out.versions = {**software_versions(), **card.versions}
    out.write(directory)
    return out


def load_state(directory: Path) -> dict[str, Any]:
    """The ``state_dict`` stored in ``directory/weights.pt`` (tensors only, no pickled code)."""
    import torch

    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise NotFoundError(f"{directory}: the weights file {WEIGHTS_FILE} is missing")
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError) as exc:
        raise InvalidInputError(f"{path}: not a readable weights file ({exc})") from None
    return state


def load_model(directory: Path, *, backend: str = "auto") -> LoadedModel:
    """Read a model directory and return it ready to predict.

    Parameters
    ----------
    directory
        A folder written by :func:`save_model`.
    backend
        ``auto`` (ONNX Runtime when ``model.onnx`` exists, onnxruntime is installed and
        the task supports it; else torch), ``torch`` or ``onnx``.

    Raises
    ------
    NotFoundError
        Not a model directory, or no trainer for its task in this medlabel.
    MissingDependencyError
        torch (the ``train`` extra) is not installed.
    """
    from medlabel.engines.deep.tasks import get_task

    card = ModelCard.read(Path(directory))
    return get_task(card.task).load(Path(directory), card, backend=backend)


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically (for results next to a model)."""
    _atomic_write(Path(path), json.dumps(payload, indent=1, default=str).encode() + b"\n")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc.strerror}") from None
