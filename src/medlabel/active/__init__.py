"""Active learning: strategies that rank unlabelled images, most useful to label first.

A :class:`~medlabel.active.strategies.Strategy` ranks :class:`Candidate` s (an image id
with what pre-annotation measured on it: uncertainty, predicted foreground, an embedding)
and returns :class:`Ranked` ids with scores, best first. Strategies are pure functions of
their inputs and seed (no database): the reader queue
(:func:`medlabel.services.assignments.rank_candidates`) builds the candidates from the
stored image scores and follows the project's chosen strategy.
"""

from medlabel.active.strategies import (
    STRATEGIES,
    Candidate,
    CombinedStrategy,
    DiversityStrategy,
    ForegroundRandomStrategy,
    OrderStrategy,
    RandomStrategy,
    Ranked,
    Strategy,
    StrategyName,
    UncertaintyStrategy,
    make_strategy,
)

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
