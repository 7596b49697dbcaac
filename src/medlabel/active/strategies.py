"""Ranking strategies for active learning (see the package docstring).

Every strategy keeps every candidate: images without the information a strategy needs
(not pre-annotated yet) come after the informed ones, in image-id order, so nothing is
ever starved.

Embeddings of different kinds (a model's features, another model's features, pixel
thumbnails) or lengths are never compared: the diversity strategies rank the candidates
of the most common kind (ties: the longest vectors, then the kind's name) and put the
others after them in image-id order, like images without an embedding; labelled
embeddings of another kind are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

import numpy as np


class StrategyName(StrEnum):
    """The strategies a project may choose (``projects.active_strategy``)."""

    ORDER = "order"
    RANDOM = "random"
    FOREGROUND_RANDOM = "foreground-random"
    UNCERTAINTY = "uncertainty"
    DIVERSITY = "diversity"
    COMBINED = "uncertainty-diversity"


@dataclass(frozen=True)
class Candidate:
    """An unlabelled image and what a model's pre-annotation measured on it.

    Parameters
    ----------
    image_id
        The image.
    uncertainty
        0 (sure) .. 1 (unsure); None when the image was not pre-annotated.
    foreground
        Voxels the model predicted as a structure; None when unknown.
    embedding
        A feature vector; None when unknown.
    embedding_kind
        Where ``embedding`` came from: ``thumbnail``, or ``model-features`` with the
        model (e.g. ``model-features:12``); only embeddings of one kind and length are
        compared ("" counts as a kind of its own).
    """

    image_id: int
    uncertainty: float | None = None
    foreground: int | None = None
    embedding: tuple[float, ...] | None = None
    embedding_kind: str = ""

    def __post_init__(self) -> None:
        if self.uncertainty is not None and not 0.0 <= self.uncertainty <= 1.0:
            raise ValueError(f"uncertainty must be within 0..1, got {self.uncertainty}")
        if self.foreground is not None and self.foreground < 0:
            raise ValueError(f"foreground must be >= 0, got {self.foreground}")


@dataclass(frozen=True)
class Ranked:
    """An image's place: higher ``score`` first (scores are comparable within one
    ranking only)."""

    image_id: int
    score: float


@runtime_checkable
class Strategy(Protocol):
    """Orders unlabelled images, most useful to label first."""

    @property
    def name(self) -> str:
        """The strategy's name (a :class:`StrategyName` value for the built-in ones)."""
        ...

    def rank(self, candidates: Sequence[Candidate]) -> list[Ranked]:
        """Every candidate once, best first."""
        ...


def _check_unique(candidates: Sequence[Candidate]) -> None:
    ids = [c.image_id for c in candidates]
    if len(set(ids)) != len(ids):
        raise ValueError("candidates must have distinct image ids")


def _rest(candidates: Sequence[Candidate], taken: set[int]) -> list[Ranked]:
    """Candidates not ranked yet, by image id, with score -inf (after every real score)."""
    left = sorted(c.image_id for c in candidates if c.image_id not in taken)
    return [Ranked(i, float("-inf")) for i in left]


@dataclass(frozen=True)
class OrderStrategy:
    """The project's image order (by id): no active learning.

    Examples
    --------
    >>> [r.image_id for r in OrderStrategy().rank([Candidate(3), Candidate(1)])]
    [1, 3]
    """

    name: str = StrategyName.ORDER.value

    def rank(self, candidates: Sequence[Candidate]) -> list[Ranked]:
        _check_unique(candidates)
        ids = sorted(c.image_id for c in candidates)
        return [Ranked(i, float(-n)) for n, i in enumerate(ids)]


def _keys(ids: Sequence[int], seed: int) -> np.ndarray:
    """A uniform number in (0, 1) per image, fixed by ``seed`` and the image id (so an
    image keeps its draw when other candidates come and go)."""
    out = np.empty(len(ids))
    for n, i in enumerate(ids):
        rng = np.random.default_rng([seed, int(i)])
        out[n] = rng.random() * (1 - 1e-12) + 1e-12
    return out


@dataclass(frozen=True)
class RandomStrategy:
    """A random order, reproducible from ``seed`` (each image's draw depends on the seed
    and its id only)."""

    seed: int = 0
    name: str = StrategyName.RANDOM.value

    def rank(self, candidates: Sequence[Candidate]) -> list[Ranked]:
        _check_unique(candidates)
        ids = [c.image_id for c in candidates]
        keys = _keys(ids, self.seed)
        order = sorted(range(len(ids)), key=lambda n: (-keys[n], ids[n]))
        return [Ranked(ids[n], float(keys[n])) for n in order]


@dataclass(frozen=True)
class ForegroundRandomStrategy:
    """Random, but images where the model found a structure are drawn more often
    (weighted sampling without replacement, Efraimidis–Spirakis keys ``u^(1/w)``).

    Weights: 1 for images with predicted foreground, ``background_weight`` for images
    where the model saw nothing, ``unknown_weight`` for images not pre-annotated. Labels
    of rare structures are what a model lacks most; empty images teach little.
    """

    seed: int = 0
    background_weight: float = 0.1
    unknown_weight: float = 0.5
    name: str = StrategyName.FOREGROUND_RANDOM.value

    def __post_init__(self) -> None:
        if not (0 < self.background_weight <= 1 and 0 < self.unknown_weight <= 1):
            raise ValueError("weights must be within (0, 1]")

    def rank(self, candidates: Sequence[Candidate]) -> list[Ranked]:
        _check_unique(candidates)
        ids = [c.image_id for c in candidates]
        weights = np.array(
            [
                self.unknown_weight
                if c.foreground is None
                else (1.0 if c.foreground > 0 else self.background_weight)
                for c in candidates
            ]
        )
        keys = _keys(ids, self.seed) ** (1.0 / weights)
        order = sorted(range(len(ids)), key=lambda n: (-keys[n], ids[n]))
        return [Ranked(ids[n], float(keys[n])) for n in order]


@dataclass(frozen=True)
class UncertaintyStrategy:
    """Most uncertain first (the pre-annotation's uncertainty: normalised entropy of the
    mean of its test-time-augmentation or MC-dropout samples); ties by image id; images
    without a score last."""

    name: str = StrategyName.UNCERTAINTY.value

    def rank(self, candidates: Sequence[Candidate]) -> list[Ranked]:
        _check_unique(candidates)
        scored = sorted(
            (c for c in candidates if c.uncertainty is not None),
            key=lambda c: (-(c.uncertainty or 0.0), c.image_id),
        )
        out = [Ranked(c.image_id, float(c.uncertainty or 0.0)) for c in scored]
        return out + _rest(candidates, {r.image_id for r in out})


EmbeddingKey = tuple[str, int]


def _key(c: Candidate) -> EmbeddingKey:
    return (c.embedding_kind, len(c.embedding or ()))


def _embedded(
    candidates: Sequence[Candidate],
) -> tuple[list[Candidate], np.ndarray, EmbeddingKey | None]:
    """The candidates with an embedding of the most common kind and length (ties: the
    longest, then the kind's name), their embeddings ``(n, length)`` and that key."""
    have = [c for c in candidates if c.embedding]
    if not have:
        return [], np.zeros((0, 0)), None
    counts: dict[EmbeddingKey, int] = {}
    for c in have:
        counts[_key(c)] = counts.get(_key(c), 0) + 1
    best = max(counts, key=lambda k: (counts[k], k[1], k[0]))
    chosen = [c for c in have if _key(c) == best]
    return chosen, np.array([c.embedding for c in chosen], float), best


def _greedy(
    points: np.ndarray, weights: np.ndarray, labelled: np.ndarray, limit: int
) -> list[tuple[int, float]]:
    """Greedy k-center: repeatedly take the point maximising ``weight × distance to the
    nearest chosen or labelled point`` (distances divided by the largest first distance).
    Returns (index, score) for up to ``limit`` points."""
    n = len(points)
    if n == 0:
        return []
    if len(labelled):
        d = np.min(np.linalg.norm(points[:, None] - labelled[None], axis=2), axis=1)
    else:  # nothing labelled yet: start from the point farthest from the centre
        d = np.linalg.norm(points - points.mean(axis=0), axis=1)
    scale = float(d.max()) or 1.0
    taken = np.zeros(n, bool)
    out: list[tuple[int, float]] = []
    for _ in range(min(limit, n)):
        gain = np.where(taken, -np.inf, weights * d / scale)
        k = int(np.argmax(gain))
        out.append((k, float(gain[k])))
        taken[k] = True
        d = np.minimum(d, np.linalg.norm(points - points[k], axis=1))
    return out


@dataclass(frozen=True)
class DiversityStrategy:
    """Core-set selection: greedy k-center on the embeddings, starting from the labelled
    images (``labelled``: their embeddings), so each next image is the one least like
    anything labelled or chosen so far. The first ``limit`` picks are greedy; the rest
    (and images without an embedding) follow in id order.
    """

    labelled: tuple[tuple[float, ...], ...] = ()
    limit: int = 256
    #: the kind of each ``labelled`` embedding (empty: all of kind "")
    labelled_kinds: tuple[str, ...] = ()
    name: str = StrategyName.DIVERSITY.value

    def __post_init__(self) -> None:
        if self.labelled_kinds and len(self.labelled_kinds) != len(self.labelled):
            raise ValueError(
                f"{len(self.labelled_kinds)} labelled kinds for {len(self.labelled)} "
                "labelled embeddings"
            )

    def _weights(self, have: Sequence[Candidate]) -> np.ndarray:
        return np.ones(len(have))

    def _labelled(self, key: EmbeddingKey | None) -> np.ndarray:
        """The labelled embeddings of ``key``'s kind and length ``(n, length)``."""
        if key is None:
            return np.zeros((0, 0))
        kinds = self.labelled_kinds or ("",) * len(self.labelled)
        same = [e for e, k in zip(self.labelled, kinds, strict=True) if (k, len(e)) == key]
        return np.array(same, float) if same else np.zeros((0, 0))

    def rank(self, candidates: Sequence[Candidate]) -> list[Ranked]:
        _check_unique(candidates)
        have, points, key = _embedded(candidates)
        picks = _greedy(points, self._weights(have), self._labelled(key), self.limit)
        out = [Ranked(have[k].image_id, score) for k, score in picks]
        return out + _rest(candidates, {r.image_id for r in out})


@dataclass(frozen=True)
class CombinedStrategy(DiversityStrategy):
    """Uncertainty × diversity: greedy k-center where each image's distance is weighted
    by its uncertainty, so the next image is uncertain *and* unlike what is labelled or
    chosen (a batch of near-duplicates of one hard case is avoided). Images without an
    uncertainty weigh ``unknown_weight``."""

    unknown_weight: float = 0.0
    name: str = StrategyName.COMBINED.value

    def _weights(self, have: Sequence[Candidate]) -> np.ndarray:
        return np.array(
            [self.unknown_weight if c.uncertainty is None else c.uncertainty for c in have]
        )


#: the strategy names, for settings and error messages
STRATEGIES = tuple(s.value for s in StrategyName)


def make_strategy(
    name: str | StrategyName,
    *,
    seed: int = 0,
    labelled: Sequence[Sequence[float]] = (),
    labelled_kinds: Sequence[str] = (),
) -> Strategy:
    """The strategy called ``name``.

    Parameters
    ----------
    seed
        For the random strategies.
    labelled
        Embeddings of labelled images (diversity strategies start from them).
    labelled_kinds
        The kind of each labelled embedding (see :class:`Candidate`); empty: all "".

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones).

    Examples
    --------
    >>> make_strategy("uncertainty").name
    'uncertainty'
    """
    try:
        kind = StrategyName(name)
    except ValueError:
        raise ValueError(
            f"unknown active-learning strategy {name!r}; use one of {', '.join(STRATEGIES)}"
        ) from None
    lab = tuple(tuple(float(x) for x in e) for e in labelled)
    kinds = tuple(str(k) for k in labelled_kinds)
    strategies: dict[StrategyName, Strategy] = {
        StrategyName.ORDER: OrderStrategy(),
        StrategyName.RANDOM: RandomStrategy(seed),
        StrategyName.FOREGROUND_RANDOM: ForegroundRandomStrategy(seed),
        StrategyName.UNCERTAINTY: UncertaintyStrategy(),
        StrategyName.DIVERSITY: DiversityStrategy(lab, labelled_kinds=kinds),
        StrategyName.COMBINED: CombinedStrategy(lab, labelled_kinds=kinds),
    }
    return strategies[kind]


__all__ = [
    "STRATEGIES",
    "Candidate",
    "CombinedStrategy",
    "DiversityStrategy",
    "ForegroundRandomStrategy",
    "OrderStrategy",
    "RandomStrategy",
    "Ranked",
    "Strategy",
    "StrategyName",
    "UncertaintyStrategy",
    "make_strategy",
]
