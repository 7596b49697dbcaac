"""A cross-validated ensemble of the classification CNN (``--option folds=K``, K ≥ 2).

The examples are split into K class-stratified folds and K networks are trained, each
validated on one fold — which also picks its best epoch — and trained on the others. The
model is their ensemble (:class:`~medlabel.engines.deep.cls_models.ResNetEnsemble`: the
mean of their probabilities), as nnU-Net ensembles its five folds. On small data sets this
helps twice: every example trains K − 1 networks instead of being set aside, and the
epochs are chosen on a validation fold of 1/K of the data rather than on one small split,
whose metric is noisy. The card's validation metrics are out-of-fold: every example is
predicted by the network that did not train on it.

Training takes about K times as long as one network; a time budget (``--minutes``) is
shared out between the folds still to train.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep.classification import MAX_FOLDS, _Run, class_metrics, fold_count
from medlabel.engines.deep.cls_models import ResNetEnsemble
from medlabel.engines.deep.cls_training import CnnInput, fit_resnet
from medlabel.engines.deep.model_dir import Architecture, TrainingConfig
from medlabel.engines.deep.tasks import Example, Reporter


def stratified_folds(targets: Sequence[int], k: int, seed: int) -> list[list[int]]:
    """Indices of ``k`` folds, each class dealt round-robin in a seeded random order (the
    dealing continues across classes, so fold sizes differ by at most one).

    Examples
    --------
    >>> sorted(len(f) for f in stratified_folds([0] * 5 + [1] * 4, 3, seed=0))
    [3, 3, 3]
    """
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    dealt = 0
    for cls in sorted(set(int(t) for t in targets)):
        members = [i for i, t in enumerate(targets) if int(t) == cls]
        for i in rng.permutation(members):
            folds[dealt % k].append(int(i))
            dealt += 1
    return [sorted(f) for f in folds]


def check_folds(examples: Sequence[Example], k: Any) -> int:
    """``k`` as a number of folds (2..``MAX_FOLDS``, see
    :func:`~medlabel.engines.deep.classification.fold_count`), or a clear error when a
    class has fewer examples than folds (a fold would lack it)."""
    folds = fold_count(k)
    if folds < 2:
        raise InvalidInputError(f"an ensemble needs 2 to {MAX_FOLDS} folds, got {folds}")
    counts: dict[int, int] = {}
    for e in examples:
        counts[int(e.target)] = counts.get(int(e.target), 0) + 1
    few = {c: n for c, n in sorted(counts.items()) if n < folds}
    if few:
        listed = ", ".join(f"class {c}: {n}" for c, n in few.items())
        raise InvalidInputError(
            f"{folds} folds need at least {folds} images of every class ({listed})"
        )
    return folds


class _FoldReporter:
    """Progress of one fold as a share of the whole run; log lines tagged with the fold."""

    def __init__(self, inner: Reporter, fold: int, folds: int) -> None:
        self.inner, self.fold, self.folds = inner, fold, folds

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        if total:
            done, total = (self.fold - 1) * total + done, self.folds * total
        tag = f"fold {self.fold}/{self.folds}"
        self.inner.progress(done, total, f"{tag}, {message}" if message else tag)

    def log(self, line: str) -> None:
        self.inner.log(f"fold {self.fold}/{self.folds}: {line}")

    def check_cancelled(self) -> None:
        self.inner.check_cancelled()


def train_cnn_folds(
    examples: Sequence[Example],
    n_classes: int,
    config: TrainingConfig,
    reporter: Reporter,
    *,
    started: float,
) -> _Run:
    """Train a K-fold ensemble of :class:`~medlabel.engines.deep.cls_models.SmallResNet`
    on all ``examples`` (K from ``config.options['folds']``)."""
    k = check_folds(examples, config.options.get("folds"))
    targets = [int(e.target) for e in examples]
    folds = stratified_folds(targets, k, config.seed)
    inputs = CnnInput.fit(examples, examples, config.options.get("image_size"))
    oof = np.zeros((len(examples), n_classes), np.float64)
    members, history, summaries = [], [], []
    plan: dict[str, Any] = {}
    for f, val_idx in enumerate(folds, start=1):
        held = set(val_idx)
        train = [e for i, e in enumerate(examples) if i not in held]
        val = [examples[i] for i in val_idx]
        update: dict[str, Any] = {"seed": config.seed + f - 1}
        if config.minutes:  # the budget left, shared by the folds still to train
            spent = (time.perf_counter() - started) / 60.0
            update["minutes"] = max((config.minutes - spent) / (k - f + 1), 0.01)
        torch.manual_seed(config.seed * 1000 + f)  # each member its own initial weights
        done = fit_resnet(
            train,
            val,
            inputs,
            n_classes,
            config.model_copy(update=update),
            _FoldReporter(reporter, f, k),
            started=time.perf_counter(),
        )
        with torch.inference_mode():
            logits = done.net(inputs.tensor(val))
        oof[val_idx] = torch.softmax(logits.float(), dim=1).numpy()
        members.append(done.net)
        history += [r.model_copy(update={"fold": f}) for r in done.result.history]
        summaries.append(
            {
                "fold": f,
                "train": len(train),
                "val": len(val),
                "val_names": [e.name for e in val],
                "seed": update["seed"],
                "best_epoch": done.result.best_epoch,
                "epochs_run": len(done.result.history),
                "stop_reason": done.result.stop_reason,
                "validation": {k: round(v, 5) for k, v in done.result.best_metrics.items()},
            }
        )
        plan = done.plan
    validation = class_metrics(np.asarray(targets), oof)
    reporter.log(
        "out-of-fold validation: " + ", ".join(f"{n} {v:.4f}" for n, v in validation.items())
    )
    ensemble = ResNetEnsemble(members).eval()
    reasons = sorted({s["stop_reason"] for s in summaries})
    return _Run(
        architecture=Architecture(name="cls-resnet", params={**done.params, "members": k}),
        input=inputs.spec(examples[0].image.modality),
        module=ensemble,
        history=history,
        best_epoch=max(s["best_epoch"] for s in summaries),
        stop_reason=f"{k} folds: " + "; ".join(reasons),
        validation=validation,
        plan={
            **plan,
            "folds": summaries,
            "validation": "out-of-fold: each example predicted by the member not trained on it",
        },
    )
