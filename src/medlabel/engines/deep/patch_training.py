"""U-Net training on random patches (2D and 3D), after nnU-Net's recipe scaled to a CPU.

Images are resampled and normalised once (:mod:`~medlabel.engines.deep.resample`);
each epoch draws ``samples_per_epoch`` patches (a third centred on foreground voxels),
augments them (:mod:`~medlabel.engines.deep.augment`) and trains with Dice + cross
entropy. Validation predicts whole validation images with sliding windows on the
network's grid and reports the Dice of each label.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from medlabel.engines.deep import augment
from medlabel.engines.deep.inference import keep_largest_component, torch_predictor, window_logits
from medlabel.engines.deep.loop import FitResult, LoopSettings, fit
from medlabel.engines.deep.metrics import dice_per_label, summarise
from medlabel.engines.deep.model_dir import Architecture, InputSpec
from medlabel.engines.deep.networks import build
from medlabel.engines.deep.planning import SegPlan
from medlabel.engines.deep.resample import network_array, network_labels
from medlabel.engines.deep.tasks import Example, Reporter


@dataclass
class Case:
    """An example on the network's grid: image ``(channels, *spatial)``, labels as class
    indices ``(*spatial)``, a sample of foreground voxels per class."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    fg: dict[int, np.ndarray]


@dataclass
class TrainedNet:
    """What a trainer hands back to the task: the module to save, the one to export to
    ONNX with its input shape, the card's architecture and input, training's record and
    the inference options chosen on validation data."""

    module: torch.nn.Module
    export_module: torch.nn.Module
    export_shape: list[int]
    architecture: Architecture
    input: InputSpec
    fit: FitResult
    inference: dict[str, Any]


def input_spec(plan: SegPlan) -> InputSpec:
    """The card's input description for a U-Net plan."""
    return InputSpec(
        dims=2 if plan.dims == 2 else 3,
        channels=plan.channels,
        modality=plan.modality,
        target_spacing=plan.target_spacing,
        patch_size=plan.patch_size,
        normalisation=plan.normalisation,
    )


def to_indices(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Label values → class indices 0..K-1 (values not listed become 0)."""
    lut = np.zeros(256, np.uint8)
    for i, v in enumerate(values):
        lut[v] = i
    out: np.ndarray = lut[labels.astype(np.uint8)]
    return out


def prepare(
    examples: Sequence[Example], spec: InputSpec, plan: SegPlan, reporter: Reporter, what: str
) -> list[Case]:
    """Resample and normalise examples onto the network's grid."""
    cases = []
    for i, e in enumerate(examples):
        img = network_array(e.image, spec)
        lab = to_indices(network_labels(np.asarray(e.target), e.image, spec), plan.label_values)
        cases.append(Case(e.name, img, lab, augment.foreground_points(lab, seed=plan.seed + i)))
        reporter.progress(i + 1, len(examples), f"preparing {what} images")
        reporter.check_cancelled()
    return cases


def architecture(plan: SegPlan) -> Architecture:
    """The card's architecture for a U-Net plan."""
    if plan.arch == "unet":  # stride 2 on every axis: as many levels as the least pooled axis
        pooled = min(sum(1 for s in plan.strides if s[a] == 2) for a in range(plan.dims))
        return Architecture(
            name="unet",
            params={
                "spatial_dims": plan.dims,
                "in_channels": plan.channels,
                "out_channels": plan.n_classes,
                "channels": plan.filters[: pooled + 1],
                **_dropout(plan),
            },
        )
    return Architecture(
        name="dynunet",
        params={
            "spatial_dims": plan.dims,
            "in_channels": plan.channels,
            "out_channels": plan.n_classes,
            "kernels": plan.kernels,
            "strides": plan.strides,
            "filters": plan.filters,
            **_dropout(plan),
        },
    )


def _dropout(plan: SegPlan) -> dict[str, float]:
    """``{"dropout": rate}`` when the plan has dropout (cards without it build as before)."""
    return {"dropout": plan.dropout} if plan.dropout > 0 else {}


def dice_ce_loss(n_classes: int) -> Any:
    """Dice (foreground classes, over the batch) + cross entropy."""
    from monai.losses import DiceCELoss

    return DiceCELoss(to_onehot_y=True, softmax=True, include_background=n_classes == 1, batch=True)


def train_patches(
    train: Sequence[Example],
    val: Sequence[Example],
    plan: SegPlan,
    *,
    budget_seconds: float | None,
    started: float,
    reporter: Reporter,
    clock: Callable[[], float] = time.perf_counter,
) -> TrainedNet:
    """Train the plan's U-Net; the returned module holds the best epoch's weights."""
    spec = input_spec(plan)
    train_cases = prepare(train, spec, plan, reporter, "training")
    val_cases = prepare(val, spec, plan, reporter, "validation")
    arch = architecture(plan)
    net: torch.nn.Module = build(arch.name, arch.params)
    fmt = None
    if plan.channels_last:
        fmt = torch.channels_last_3d if plan.dims == 3 else torch.channels_last
        net = net.to(memory_format=fmt)
    loss_fn = dice_ce_loss(plan.n_classes)
    steps = max(1, plan.samples_per_epoch // plan.batch_size)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([plan.seed, epoch])
        for _ in range(steps):
            xs, ys = [], []
            for _ in range(plan.batch_size):
                case = train_cases[int(rng.integers(len(train_cases)))]
                centre, _forced = augment.pick_centre(
                    rng, case.labels.shape, plan.patch_size, case.fg, plan.fg_oversample
                )
                params = augment.draw(rng, plan.augmentation, plan.dims)
                img, lab = augment.extract(
                    case.image, case.labels, centre, plan.patch_size, params, rng
                )
                assert lab is not None
                xs.append(img)
                ys.append(lab)
            x = torch.from_numpy(np.stack(xs))
            if fmt is not None:
                x = x.contiguous(memory_format=fmt)
            y = torch.from_numpy(np.stack(ys).astype(np.int64))[:, None]
            yield x, y

    def validate(module: torch.nn.Module) -> tuple[dict[str, float], float | None]:
        predictor = torch_predictor(
            module, precision=plan.precision, channels_last=plan.channels_last
        )
        return evaluate(val_cases, predictor, plan, loss_fn=loss_fn)

    settings = LoopSettings(
        max_epochs=plan.max_epochs,
        steps_per_epoch=steps,
        learning_rate=plan.learning_rate,
        weight_decay=plan.weight_decay,
        patience=plan.patience,
        budget_seconds=budget_seconds,
        started=started,
        clock=clock,
        precision=plan.precision,
    )
    result = fit(net, loss_fn, batches, validate if val_cases else None, settings, reporter)
    inference = {"sw_overlap": plan.sw_overlap, "largest_component": plan.largest_component}
    if val_cases and plan.largest_component is False:
        inference.update(_choose_postprocessing(net, val_cases, plan, result))
    net = net.to(memory_format=torch.contiguous_format)
    return TrainedNet(
        module=net,
        export_module=net,
        export_shape=[1, plan.channels, *plan.patch_size],
        architecture=arch,
        input=spec,
        fit=result,
        inference=inference,
    )


def evaluate(
    cases: Sequence[Case],
    predictor: Any,
    plan: SegPlan,
    *,
    loss_fn: Any = None,
    largest_component: bool = False,
) -> tuple[dict[str, float], float | None]:
    """Mean Dice per label of sliding-window predictions on the network's grid."""
    classes = list(range(1, plan.n_classes))
    scores, losses = [], []
    for case in cases:
        logits = window_logits(
            case.image,
            plan.patch_size,
            predictor,
            overlap=plan.sw_overlap,
            batch=2 if plan.dims == 3 else 4,
        )
        if loss_fn is not None:
            target = torch.from_numpy(case.labels.astype(np.int64))[None, None]
            losses.append(float(loss_fn(logits[None], target)))
        pred = logits.argmax(0).numpy().astype(np.uint8)
        if largest_component:
            pred = keep_largest_component(pred, classes)
        scores.append(dice_per_label(pred, case.labels, classes))
    named = summarise(scores, classes)
    out = {
        ("mean_dice" if k == "mean_dice" else f"dice_{plan.label_values[int(k[5:])]}"): v
        for k, v in named.items()
    }
    return out, (float(np.mean(losses)) if losses else None)


def _choose_postprocessing(
    net: torch.nn.Module, cases: Sequence[Case], plan: SegPlan, result: FitResult
) -> dict[str, Any]:
    """Keep only the largest component of each label if that helps validation Dice."""
    t0 = time.perf_counter()
    predictor = torch_predictor(net, precision=plan.precision, channels_last=plan.channels_last)
    with_lcc, _ = evaluate(cases, predictor, plan, largest_component=True)
    without = result.best_metrics.get("mean_dice", 0.0)
    use = with_lcc["mean_dice"] > without + 1e-3
    return {
        "largest_component": bool(use),
        "largest_component_check": {
            "mean_dice_without": round(without, 5),
            "mean_dice_with": round(with_lcc["mean_dice"], 5),
            "seconds": round(time.perf_counter() - t0, 1),
        },
    }
