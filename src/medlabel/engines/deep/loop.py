"""The training loop shared by the trainable tasks: epochs of batches, AdamW with a
polynomial learning-rate decay, validation after each epoch, the best epoch's weights
kept, early stopping on patience or a time budget, progress and cancellation through the
reporter.

The learning rate decays as ``lr0 · (1 − p)^0.9`` where ``p`` is the fraction of the run
done: of the epochs when the run is counted in epochs, of the time budget when it has
one (whichever is further), so a budgeted run still anneals before it ends.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from medlabel.engines.deep.model_dir import EpochRecord
from medlabel.engines.deep.tasks import Reporter

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]
#: validation: the network → (metrics, validation loss or None)
Validator = Callable[[torch.nn.Module], tuple[dict[str, float], float | None]]


@dataclass
class LoopSettings:
    """How long and how to train (filled from the task's plan and the user's config)."""

    max_epochs: int
    steps_per_epoch: int
    learning_rate: float
    weight_decay: float = 3e-5
    patience: int = 30
    #: seconds allowed from ``started`` (None: no budget), measured by ``clock``
    budget_seconds: float | None = None
    started: float = field(default_factory=time.perf_counter)
    clock: Callable[[], float] = time.perf_counter
    precision: str = "fp32"
    #: metric that decides the best epoch (higher is better); the train loss without one
    score: str = "mean_dice"


@dataclass
class FitResult:
    """How training went; the network holds the best epoch's weights afterwards."""

    history: list[EpochRecord]
    best_epoch: int
    best_metrics: dict[str, float]
    stop_reason: str


def seed_everything(seed: int, threads: int | None = None) -> int:
    """Seed Python, numpy and torch; set torch's intra-op threads (default: the cores,
    at most 4). Returns the thread count."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    n = threads or max(1, min(4, os.cpu_count() or 1))
    torch.set_num_threads(n)
    return n


def budget_clock(kind: str, threads: int) -> Callable[[], float]:
    """The clock a time budget is measured with: ``wall`` (elapsed seconds) or ``cpu``
    (this process's CPU seconds divided by its threads: the wall time the same work
    takes on an otherwise idle machine, for budgets on shared machines)."""
    if kind == "wall":
        return time.perf_counter
    if kind == "cpu":
        return lambda: time.process_time() / max(1, threads)
    raise ValueError(f"budget clock must be 'wall' or 'cpu', got {kind!r}")


def autocast(precision: str) -> AbstractContextManager[Any]:
    """bfloat16 autocast on the CPU for ``bf16``, nothing for ``fp32``."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def fit(
    net: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batches: Callable[[int], Iterator[Batch]],
    validate: Validator | None,
    settings: LoopSettings,
    reporter: Reporter,
    *,
    parameters: list[torch.nn.Parameter] | None = None,
) -> FitResult:
    """Train ``net`` and leave the best epoch's weights in it.

    Parameters
    ----------
    net
        The network (trained in place).
    loss_fn
        ``(logits, target) -> scalar``.
    batches
        ``epoch -> iterator of (input, target)`` of ``settings.steps_per_epoch`` batches;
        it must draw its randomness from the epoch number (reproducible runs).
    validate
        Metrics of the network on validation data after each epoch, or None.
    settings
        Epochs, learning rate, patience, budget, precision.
    reporter
        Progress per batch, a log line per epoch, cancellation between batches.
    parameters
        The parameters to optimise (default: all of ``net``'s that require gradients).
    """
    params = parameters or [p for p in net.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    history: list[EpochRecord] = []
    best_score, best_epoch, best_metrics = -float("inf"), 0, {}
    best_state = copy.deepcopy(net.state_dict())
    stop = "epochs"
    total_steps = settings.max_epochs * settings.steps_per_epoch
    step = 0
    for epoch in range(1, settings.max_epochs + 1):
        t0, c0 = time.perf_counter(), settings.clock()
        net.train()
        losses: list[float] = []
        lr = settings.learning_rate
        for x, y in batches(epoch):
            reporter.check_cancelled()
            lr = settings.learning_rate * (1.0 - _fraction_done(settings, step, total_steps)) ** 0.9
            for group in optim.param_groups:
                group["lr"] = lr
            with autocast(settings.precision):
                logits = net(x)
            loss = loss_fn(logits.float(), y)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            losses.append(float(loss.detach()))
            step += 1
            done = (epoch - 1) + len(losses) / settings.steps_per_epoch
            reporter.progress(done, _expected_epochs(settings, epoch, c0), f"epoch {epoch}")
            if _over_budget(settings):  # a long epoch ends early; it is still validated
                break
        metrics: dict[str, float] = {}
        val_loss = None
        if validate is not None:
            net.eval()
            with torch.inference_mode():
                metrics, val_loss = validate(net)
        train_loss = float(np.mean(losses)) if losses else float("nan")
        score = metrics.get(settings.score, -train_loss)
        record = EpochRecord(
            epoch=epoch,
            train_loss=round(train_loss, 5),
            val_loss=None if val_loss is None else round(val_loss, 5),
            metrics={k: round(v, 5) for k, v in metrics.items()},
            learning_rate=float(lr),
            seconds=round(time.perf_counter() - t0, 2),
        )
        history.append(record)
        if score > best_score + 1e-4:
            best_score, best_epoch, best_metrics = score, epoch, dict(metrics)
            best_state = copy.deepcopy(net.state_dict())
        reporter.log(_line(record, settings.score, best_score, best_epoch))
        elapsed = settings.clock() - settings.started
        epoch_seconds = settings.clock() - c0
        if epoch - best_epoch >= settings.patience:
            stop = f"no improvement for {settings.patience} epochs"
            break
        if _over_budget(settings) or (
            settings.budget_seconds is not None
            and elapsed + epoch_seconds > settings.budget_seconds
        ):
            stop = "time budget"
            break
    net.load_state_dict(best_state)
    net.eval()
    return FitResult(history, best_epoch, best_metrics, stop)


def _over_budget(settings: LoopSettings) -> bool:
    return settings.budget_seconds is not None and (
        settings.clock() - settings.started > settings.budget_seconds
    )


def _fraction_done(settings: LoopSettings, step: int, total_steps: int) -> float:
    p = step / max(total_steps, 1)
    if settings.budget_seconds:
        p = max(p, (settings.clock() - settings.started) / settings.budget_seconds)
    return min(p, 0.999)


def _expected_epochs(settings: LoopSettings, epoch: int, c0: float) -> float:
    if settings.budget_seconds is None or (epoch == 1 and settings.clock() - c0 < 1):
        return float(settings.max_epochs)
    per_epoch = (settings.clock() - settings.started) / max(epoch, 1)
    return float(min(settings.max_epochs, max(epoch, settings.budget_seconds / per_epoch)))


def _line(r: EpochRecord, score: str, best: float, best_epoch: int) -> str:
    parts = [f"epoch {r.epoch}: train loss {r.train_loss:.4f}"]
    if r.val_loss is not None:
        parts.append(f"val loss {r.val_loss:.4f}")
    parts += [f"{k} {v:.4f}" for k, v in r.metrics.items()]
    parts.append(f"lr {r.learning_rate:.2e}, {r.seconds:.1f} s")
    if r.metrics:
        parts.append(f"best {score} {best:.4f} (epoch {best_epoch})")
    return ", ".join(parts)
