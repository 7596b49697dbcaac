"""Simulated active learning: how fast a strategy's model improves with labelled cases.

The loop a project runs, with the person replaced by the reference labels: start with
``steps[0]`` labelled cases drawn at random, train, score the unlabelled pool with the
model (pre-annotation: uncertainty, predicted foreground, an embedding), let the
strategy pick the cases to label next, and repeat until ``steps[-1]`` cases are
labelled. After each training the model is measured on a fixed test set (mean Dice for
segmentation, AUC and accuracy for classification). Every strategy starts from the same
random cases, so curves differ only by what the strategy picked.

Scoring a case is what pre-annotation does: the uncertainty method of
:attr:`CurveSettings.uncertainty` (test-time augmentation, MC dropout or ``auto``) and,
for the diversity strategies, the model's own features of the case as its embedding
(:func:`medlabel.engines.deep.features.image_embedding`; labelled cases are embedded
by the same model each round).

The random strategy needs no model to pick, so its rounds skip scoring the pool.
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.active.strategies import Candidate, StrategyName, make_strategy
from medlabel.core.errors import InvalidInputError
from medlabel.engines.deep.model_dir import TaskKind, TrainingConfig
from medlabel.engines.deep.tasks import Example, Reporter, TaskTrainer, TrainingSet

#: strategies that need the model's view of the pool
_MODEL_FREE = {StrategyName.RANDOM, StrategyName.ORDER}
#: strategies that compare embeddings
_DIVERSE = {StrategyName.DIVERSITY, StrategyName.COMBINED}


@dataclass(frozen=True)
class CurveSettings:
    """What one simulated loop does.

    Parameters
    ----------
    steps
        Labelled cases after each round, increasing (e.g. 10, 20, 40, 80).
    seed
        Draws the first cases, the pool samples and the random strategy.
    pool
        Unlabelled cases scored per round (a random sample of the pool, so a round
        costs the same on a large pool); ``None`` scores all of them.
    tta
        Whether segmentation may use flips (off: test-time augmentation is a single
        prediction).
    uncertainty
        ``auto`` (MC dropout when the model has dropout, else test-time augmentation),
        ``tta``, ``mc-dropout`` or ``tta+mc-dropout``.
    mc_samples
        Stochastic passes of MC dropout per case.
    training
        The training configuration of every round.
    """

    steps: tuple[int, ...] = (10, 20, 40, 80)
    seed: int = 0
    pool: int | None = 200
    tta: bool = True
    uncertainty: str = "auto"
    mc_samples: int = 8
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        from medlabel.engines.deep.mc_dropout import parse_method

        parse_method(self.uncertainty)  # a clear error for an unknown name
        if self.mc_samples < 2:
            raise InvalidInputError("MC dropout needs at least 2 samples")
        if not self.steps or any(n < 2 for n in self.steps):
            raise InvalidInputError("--steps need at least 2 labelled cases each")
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise InvalidInputError(f"--steps must increase, got {list(self.steps)}")
        if self.pool is not None and self.pool < 1:
            raise InvalidInputError("--pool must be at least 1")


@dataclass
class Round:
    """One round: the model trained on ``labelled`` cases and how it did."""

    labelled: int
    metrics: dict[str, float]
    train_wall_minutes: float
    train_cpu_minutes: float
    epochs: int
    stop_reason: str
    #: seconds spent scoring the pool after this round (0 for the last round / random)
    score_seconds: float = 0.0
    #: the cases the strategy picked after this round
    picked: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "labelled": self.labelled,
            "metrics": {k: round(v, 4) for k, v in self.metrics.items()},
            "train_wall_minutes": round(self.train_wall_minutes, 2),
            "train_cpu_minutes": round(self.train_cpu_minutes, 2),
            "epochs": self.epochs,
            "stop_reason": self.stop_reason,
            "score_seconds": round(self.score_seconds, 1),
            "picked": self.picked,
        }


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _subset(data: TrainingSet, examples: Sequence[Example]) -> TrainingSet:
    return TrainingSet(data.task, list(examples), data.labels, source=data.source)


def evaluate(task: TaskKind, model: Any, test: Sequence[Example]) -> dict[str, float]:
    """The model on the test cases: ``mean_dice`` (and ``dice_<label>``) for
    segmentation, ``auc`` and ``accuracy`` for classification."""
    if task == TaskKind.SEG:
        from medlabel.quality.overlap import dice

        values = [lab.value for lab in model.card.labels if lab.value != 0]
        per_label: dict[int, list[float]] = {v: [] for v in values}
        for ex in test:
            pred = np.asarray(model.predict(ex.image))
            ref = np.asarray(ex.target).reshape(pred.shape)
            for v in values:
                if (ref == v).any() or (pred == v).any():
                    per_label[v].append(dice(pred == v, ref == v))
        out = {f"dice_{v}": float(np.mean(d)) for v, d in per_label.items() if d}
        out["mean_dice"] = float(np.mean(list(out.values()))) if out else 0.0
        return out
    if task == TaskKind.CLS:
        from medlabel.engines.deep.classification import class_metrics

        probs = np.stack([model.probabilities(ex.image) for ex in test])
        return class_metrics(np.array([int(ex.target) for ex in test]), probs)
    raise InvalidInputError(f"learning curves take seg or cls tasks, not {task.value}")


def score(
    task: TaskKind,
    model: Any,
    ex: Example,
    key: int,
    *,
    settings: CurveSettings | None = None,
    embed: bool = True,
) -> Candidate:
    """What pre-annotation measures on an unlabelled case, as a strategy's candidate:
    uncertainty by ``settings.uncertainty`` (seeded with ``key``), predicted foreground
    (segmentation) and, with ``embed``, the model's features as the embedding."""
    from medlabel.engines.deep.features import image_embedding

    s = settings or CurveSettings()
    vector: tuple[float, ...] | None = None
    kind = ""
    if task == TaskKind.SEG:
        from medlabel.engines.deep.uncertainty import predict_with_uncertainty

        pred = predict_with_uncertainty(
            model, ex.image, tta=s.tta, method=s.uncertainty, samples=s.mc_samples, seed=key,
            features=embed,
        )  # fmt: skip
        if embed:
            found, which = image_embedding(model, ex.image, known=pred.features)
            vector, kind = tuple(found), which.value
        return Candidate(
            key,
            uncertainty=min(1.0, max(0.0, pred.uncertainty())),
            foreground=int((pred.labels > 0).sum()),
            embedding=vector,
            embedding_kind=kind,
        )
    from medlabel.engines.deep.cls_uncertainty import class_uncertainty

    if embed:
        found, which = image_embedding(model, ex.image)
        vector, kind = tuple(found), which.value
    measured = class_uncertainty(
        model, ex.image, method=s.uncertainty, samples=s.mc_samples, seed=key
    )
    return Candidate(
        key,
        uncertainty=min(1.0, max(0.0, measured.entropy)),
        embedding=vector,
        embedding_kind=kind,
    )


def run_curve(
    trainer: TaskTrainer,
    train: TrainingSet,
    test: Sequence[Example],
    strategy: str,
    settings: CurveSettings,
    reporter: Reporter,
    *,
    on_round: Callable[[Round], None] | None = None,
) -> list[Round]:
    """Simulate the loop with ``strategy`` and return one :class:`Round` per step.

    Raises
    ------
    InvalidInputError
        More steps than training cases, a strategy that needs what the task cannot
        give (foreground of a classifier), or an unknown strategy.
    """
    try:
        kind = StrategyName(strategy)
    except ValueError:
        make_strategy(strategy)  # raises the message listing the known names
        raise
    if kind == StrategyName.FOREGROUND_RANDOM and train.task != TaskKind.SEG:
        raise InvalidInputError("foreground-random needs a segmentation task")
    examples = list(train.examples)
    if settings.steps[-1] > len(examples):
        raise InvalidInputError(
            f"--steps go up to {settings.steps[-1]} labelled cases but the training folder "
            f"has {len(examples)}"
        )
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(examples))
    labelled = [int(i) for i in order[: settings.steps[0]]]
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="medlabel-curve-") as tmp:
        for r, n in enumerate(settings.steps):
            reporter.log(f"{strategy}: round {r + 1}/{len(settings.steps)}, {n} labelled cases")
            t0, c0 = time.perf_counter(), _cpu_seconds()
            trained = trainer.train(
                _subset(train, [examples[i] for i in labelled]), settings.training, reporter
            )
            wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
            directory = Path(tmp) / f"{strategy}-{r}"
            card = trained.save(directory, onnx=False)
            model = trainer.load(directory, card, backend="torch")
            result = Round(
                labelled=n,
                metrics=evaluate(train.task, model, test),
                train_wall_minutes=wall / 60,
                train_cpu_minutes=cpu / 60,
                epochs=card.epochs_run,
                stop_reason=card.stop_reason,
            )
            if r + 1 < len(settings.steps):
                want = settings.steps[r + 1] - n
                picked, result.score_seconds = _pick(
                    train.task, model, examples, labelled, want, kind, settings, r
                )
                labelled += picked
                result.picked = [examples[i].name for i in picked]
            rounds.append(result)
            if on_round is not None:
                on_round(result)
            reporter.check_cancelled()
    return rounds


def _pick(
    task: TaskKind,
    model: Any,
    examples: Sequence[Example],
    labelled: Sequence[int],
    want: int,
    kind: StrategyName,
    settings: CurveSettings,
    round_index: int,
) -> tuple[list[int], float]:
    """Indices of the ``want`` cases the strategy labels next, and the scoring time."""
    taken = set(labelled)
    pool = [i for i in range(len(examples)) if i not in taken]
    rng = np.random.default_rng([settings.seed, round_index + 1])
    if settings.pool is not None and len(pool) > max(settings.pool, want):
        pool = sorted(
            int(i) for i in rng.choice(pool, size=max(settings.pool, want), replace=False)
        )
    seed = settings.seed * 1000 + round_index
    t0 = time.perf_counter()
    known: list[tuple[float, ...]] = []
    kinds: list[str] = []
    if kind in _MODEL_FREE:
        candidates = [Candidate(i) for i in pool]
    else:
        from medlabel.engines.deep.features import image_embedding

        embed = kind in _DIVERSE
        candidates = [
            score(task, model, examples[i], i, settings=settings, embed=embed) for i in pool
        ]
        for i in labelled if embed else []:
            found, which = image_embedding(model, examples[i].image)
            known.append(tuple(found))
            kinds.append(which.value)
    strategy = make_strategy(kind, seed=seed, labelled=known, labelled_kinds=kinds)
    ranked = strategy.rank(candidates)
    return [r.image_id for r in ranked[:want]], time.perf_counter() - t0


def compare(curves: dict[str, list[Round]], metric: str) -> list[dict[str, Any]]:
    """Per step: each strategy's ``metric`` and its difference from random."""
    rows: list[dict[str, Any]] = []
    base = curves.get(StrategyName.RANDOM.value)
    steps = [r.labelled for r in next(iter(curves.values()))]
    for i, n in enumerate(steps):
        row: dict[str, Any] = {"labelled": n}
        for name, rounds in curves.items():
            value = rounds[i].metrics.get(metric)
            row[name] = None if value is None else round(value, 4)
            if base is not None and name != StrategyName.RANDOM.value and value is not None:
                ref = base[i].metrics.get(metric)
                row[f"{name}_minus_random"] = None if ref is None else round(value - ref, 4)
        rows.append(row)
    return rows
