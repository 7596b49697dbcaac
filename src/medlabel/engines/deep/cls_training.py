"""Training of the classification networks (see
:mod:`medlabel.engines.deep.classification`): the from-scratch CNN and the head on frozen
LiteMedSAM features, both through the shared loop (:func:`~medlabel.engines.deep.loop.fit`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from medlabel.engines.deep.classification import (
    _Run,
    batch_indices,
    class_metrics,
    expected_steps,
)
from medlabel.engines.deep.cls_data import plane_of, raw_input
from medlabel.engines.deep.cls_models import FeatureHead, SmallResNet, pool_embedding
from medlabel.engines.deep.loop import FitResult, LoopSettings, fit
from medlabel.engines.deep.model_dir import (
    Architecture,
    InputSpec,
    Normalisation,
    NormScheme,
    TrainingConfig,
)
from medlabel.engines.deep.tasks import Example, Reporter

#: random augmentation of the CNN's batches (recorded in the card's plan)
P_FLIP_COLUMNS = 0.5
ROTATION_DEG = 15.0
SCALE = (0.85, 1.15)
SHIFT_FRACTION = 0.1
BRIGHTNESS = 0.15
CONTRAST = (0.8, 1.2)
AUGMENTATION = {
    "p_flip_columns": P_FLIP_COLUMNS,
    "rotation_deg": ROTATION_DEG,
    "scale": list(SCALE),
    "shift_fraction": SHIFT_FRACTION,
    "brightness": BRIGHTNESS,
    "contrast": list(CONTRAST),
}


def _side(examples: Sequence[Example], asked: Any) -> int:
    """The CNN's input side: asked, else the median larger image side rounded up to a
    multiple of 8 within 32..96."""
    if asked:
        return int(asked)
    sides = [max(plane_of(e.image).shape[:2]) for e in examples]
    side = int(np.ceil(float(np.median(sides)) / 8.0) * 8)
    return int(min(max(side, 32), 96))


def _augment(x: torch.Tensor, gen: torch.Generator, enabled: bool) -> torch.Tensor:
    """Random flips, rotation, scaling, shifts and brightness/contrast per image."""
    if not enabled:
        return x
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    angle = torch.deg2rad(uniform(-ROTATION_DEG, ROTATION_DEG))
    scale = uniform(*SCALE)
    shift = SHIFT_FRACTION * 2.0  # affine_grid coordinates span [-1, 1]
    tx, ty = uniform(-shift, shift), uniform(-shift, shift)
    flip = torch.where(torch.rand(n, generator=gen) < P_FLIP_COLUMNS, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )
    grid = functional.affine_grid(theta, list(x.shape), align_corners=False)
    out = functional.grid_sample(
        x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    bright = uniform(-BRIGHTNESS, BRIGHTNESS).view(n, 1, 1, 1)
    contrast = uniform(*CONTRAST).view(n, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return (out - mean) * contrast + mean + bright


def _history_fields(result: FitResult) -> dict[str, Any]:
    return {
        "history": result.history,
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "validation": dict(result.best_metrics),
    }


def _validator(predict: Any, xv: torch.Tensor, yv: np.ndarray) -> Any:
    def validate(net: torch.nn.Module) -> tuple[dict[str, float], float | None]:
        logits = torch.cat([predict(net, xv[i : i + 64]) for i in range(0, len(xv), 64)])
        loss = float(functional.cross_entropy(logits, torch.from_numpy(yv)))
        return class_metrics(yv, torch.softmax(logits, 1).numpy()), loss

    return validate


def _score(yv: np.ndarray) -> str:
    return "auc" if len(set(yv.tolist())) >= 2 else "accuracy"


@dataclass
class CnnInput:
    """How images become the CNN's input: side, channels and the fixed normalisation."""

    side: int
    channels: int
    norm: Normalisation

    @classmethod
    def fit(
        cls, examples: Sequence[Example], everything: Sequence[Example], asked: Any
    ) -> CnnInput:
        """Side and channels of ``examples``, normalisation from their intensities
        (``everything``: all images the model will see, for the 8-bit check)."""
        side = _side(examples, asked)
        channels = 3 if any(plane_of(e.image).ndim == 3 for e in examples) else 1
        raw = np.stack([raw_input(plane_of(e.image), channels, (side, side)) for e in examples])
        scale = 255.0 if all(plane_of(e.image).dtype == np.uint8 for e in everything) else 1.0
        unit = raw / scale
        norm = Normalisation(
            scheme=NormScheme.FIXED,
            mean=[float(v) for v in unit.mean(axis=(0, 2, 3))],
            std=[float(max(v, 1e-6)) for v in unit.std(axis=(0, 2, 3))],
            scale=scale,
        )
        return cls(side, channels, norm)

    def tensor(self, examples: Sequence[Example]) -> torch.Tensor:
        shape = (self.side, self.side)
        raw = (
            np.stack([raw_input(plane_of(e.image), self.channels, shape) for e in examples])
            if examples
            else np.zeros((0, self.channels, *shape), np.float32)
        )
        return torch.from_numpy(self.norm.apply(raw, channel_axis=1))

    def spec(self, modality: Any) -> InputSpec:
        return InputSpec(
            dims=2,
            channels=self.channels,
            modality=modality,
            patch_size=[self.side, self.side],
            resize=True,
            normalisation=self.norm,
        )


@dataclass
class ResNetFit:
    """One trained :class:`SmallResNet` and how its training went."""

    net: SmallResNet
    params: dict[str, Any]
    result: FitResult
    plan: dict[str, Any]


def fit_resnet(
    train: Sequence[Example],
    val: Sequence[Example],
    inputs: CnnInput,
    n_classes: int,
    config: TrainingConfig,
    reporter: Reporter,
    *,
    started: float,
) -> ResNetFit:
    """Train one :class:`SmallResNet` from scratch (augmented batches, best epoch by
    validation AUC); ``config.minutes`` counts from ``started``."""
    opts = config.options
    xt = inputs.tensor(train)
    yt = np.array([int(e.target) for e in train], np.int64)
    xv = inputs.tensor(val)
    yv = np.array([int(e.target) for e in val], np.int64)
    batch = config.batch_size or min(32, len(train))
    params: dict[str, Any] = {
        "in_channels": inputs.channels,
        "n_classes": n_classes,
        "width": int(opts.get("width", 32)),
        "dropout": 0.2,
    }
    net = SmallResNet(**params)
    steps = expected_steps(len(train), batch)
    smoothing = float(opts.get("label_smoothing", 0.05))

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([config.seed, epoch])
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        for idx in batch_indices(rng.permutation(len(train)), batch):
            x = _augment(xt[idx], gen, config.augment)
            yield x, torch.from_numpy(yt[idx])

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(logits, y, label_smoothing=smoothing)

    settings = LoopSettings(
        max_epochs=config.epochs or 150,
        steps_per_epoch=steps,
        learning_rate=config.learning_rate or 2e-3,
        weight_decay=float(opts.get("weight_decay", 5e-4)),
        patience=config.patience or 30,
        budget_seconds=config.minutes * 60.0 if config.minutes else None,
        started=started,
        score=_score(yv),
    )
    validate = _validator(lambda m, x: m(x), xv, yv) if len(val) else None
    result = fit(net, loss_fn, batches, validate, settings, reporter)
    plan = {
        "image_size": [inputs.side, inputs.side],
        "batch_size": batch,
        "steps_per_epoch": steps,
        "max_epochs": settings.max_epochs,
        "learning_rate": settings.learning_rate,
        "weight_decay": settings.weight_decay,
        "patience": settings.patience,
        "label_smoothing": smoothing,
        "augmentation": AUGMENTATION if config.augment else None,
        "augmentation_seed": "numpy default_rng([seed, epoch]) seeds a torch Generator",
        "score": settings.score,
    }
    return ResNetFit(net, params, result, plan)


def train_cnn(
    train: Sequence[Example],
    val: Sequence[Example],
    n_classes: int,
    config: TrainingConfig,
    reporter: Reporter,
    *,
    started: float,
) -> _Run:
    """Train :class:`SmallResNet` from scratch on whole resized images."""
    inputs = CnnInput.fit(train, [*train, *val], config.options.get("image_size"))
    done = fit_resnet(train, val, inputs, n_classes, config, reporter, started=started)
    return _Run(
        architecture=Architecture(name="cls-resnet", params=done.params),
        input=inputs.spec(train[0].image.modality),
        module=done.net,
        plan=done.plan,
        **_history_fields(done.result),
    )


def embed_examples(
    examples: Sequence[Example], config: TrainingConfig, reporter: Reporter, *, offset: int = 0,
    total: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """Pooled LiteMedSAM features ``(n, 512)`` of 2D images (embeddings cached)."""
    from medlabel.engines.deep.medsam import Embedder, default_cache_dir, frame_input
    from medlabel.engines.interactive.model import load_pretrained

    net, _ = load_pretrained()
    encoder = net.image_encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    cache = config.options.get("cache_dir")
    embedder = Embedder(encoder, Path(cache) if cache else default_cache_dir())
    feats = []
    for i, e in enumerate(examples):
        model_in, frame = frame_input(e.image)
        feats.append(pool_embedding(embedder(model_in), frame.size))
        reporter.progress(offset + i + 1, total or len(examples), "encoding images (LiteMedSAM)")
        reporter.check_cancelled()
    info = {
        "embedding_runtime": embedder.runtime,
        "embeddings_computed": embedder.computed,
        "embedding_seconds": round(embedder.seconds, 1),
    }
    return np.stack(feats).astype(np.float32), info


def train_feature_head(
    train: Sequence[Example],
    val: Sequence[Example],
    n_classes: int,
    config: TrainingConfig,
    reporter: Reporter,
    *,
    started: float,
) -> _Run:
    """Train an MLP on pooled embeddings of the frozen LiteMedSAM encoder."""
    from medlabel.engines.deep.medsam import ENCODER
    from medlabel.engines.deep.planning import MEDSAM_SIDE
    from medlabel.engines.interactive.model import WEIGHTS_SHA256

    t0 = time.perf_counter()
    everything, info = embed_examples([*train, *val], config, reporter)
    reporter.log(
        f"embeddings ({info['embedding_runtime']}): {info['embeddings_computed']} computed in "
        f"{time.perf_counter() - t0:.0f} s"
    )
    ft, fv = everything[: len(train)], everything[len(train) :]
    yt = np.array([int(e.target) for e in train], np.int64)
    yv = np.array([int(e.target) for e in val], np.int64)
    opts = config.options
    hidden = int(opts.get("hidden", 256))
    params = {"in_features": ft.shape[1], "n_classes": n_classes, "hidden": hidden}
    head = FeatureHead(**params, dropout=0.3)
    head.set_statistics(ft)
    batch = config.batch_size or min(64, len(train))
    steps = expected_steps(len(train), batch)
    xt = torch.from_numpy(ft)
    noise = float(opts.get("feature_noise", 0.1)) if config.augment else 0.0

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rng = np.random.default_rng([config.seed, epoch])
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        for idx in batch_indices(rng.permutation(len(train)), batch):
            x = xt[idx]
            if noise:
                x = x + noise * head.std * torch.randn(x.shape, generator=gen)
            yield x, torch.from_numpy(yt[idx])

    settings = LoopSettings(
        max_epochs=config.epochs or 200,
        steps_per_epoch=steps,
        learning_rate=config.learning_rate or 1e-3,
        weight_decay=float(opts.get("weight_decay", 1e-2)),
        patience=config.patience or 40,
        budget_seconds=config.minutes * 60.0 if config.minutes else None,
        started=started,
        score=_score(yv),
    )
    validate = _validator(lambda m, x: m(x), torch.from_numpy(fv), yv) if len(val) else None
    result = fit(head, functional.cross_entropy, batches, validate, settings, reporter)
    return _Run(
        architecture=Architecture(
            name="cls-feature-head", params={**params, "encoder_sha256": WEIGHTS_SHA256}
        ),
        input=InputSpec(
            dims=2,
            channels=3,
            modality=train[0].image.modality,
            patch_size=[MEDSAM_SIDE, MEDSAM_SIDE],
            resize=True,
            normalisation=Normalisation(scheme=NormScheme.NONE),
        ),
        module=head,
        plan={
            "encoder": ENCODER,
            "features": "mean and max of the 256 embedding channels over the image's cells",
            "batch_size": batch,
            "max_epochs": settings.max_epochs,
            "learning_rate": settings.learning_rate,
            "weight_decay": settings.weight_decay,
            "patience": settings.patience,
            "feature_noise": noise,
            "score": settings.score,
        },
        inference={
            "frame": "LiteMedSAM: 8-bit, longest side 256, padded bottom/right",
            **info,
        },
        onnx=False,
        **_history_fields(result),
    )
