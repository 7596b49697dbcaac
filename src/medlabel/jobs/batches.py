"""Mapping a function over many items in batches, wherever the job runs.

A job that does the same expensive thing to many items (a model over images) asks its
:class:`~medlabel.jobs.spec.JobEnv` to map a *worker* over them::

    with env.map_batches(Predictor(model_id), image_ids, batch_size=8,
                         cancelled=reporter.cancelled) as results:
        for image_id, out in results:       # as batches finish
            store(out)                      # the job's own process writes results
            reporter.progress(...)

``Predictor(model_id)`` is a *worker factory*: called once per worker with that
worker's :class:`~medlabel.services.context.Context`, it loads what the work needs (the
model) and returns a callable that turns a batch of items into one result per item. An
optional ``close()`` on that callable runs when the worker ends.

Where the batches run depends on the executor: :class:`InlineMapper` (the local
executor, the CLI) runs them one after the other in the job's thread with a single
worker; the Ray executor spreads them over actors of the cluster, each loading the model
once (:mod:`medlabel.jobs.ray_executor`). Factories and items must therefore be
picklable (a module-level dataclass, ids rather than rows), and results too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from medlabel.jobs.reporter import JobCancelled

if TYPE_CHECKING:
    from medlabel.services.context import Context

T = TypeVar("T")
R = TypeVar("R")

#: ``factory(ctx) -> worker``; ``worker(batch) -> results`` (one per item, same order)
WorkerFactory = Callable[["Context"], Callable[[list[T]], list[R]]]


def split(items: Sequence[T], batch_size: int) -> list[list[T]]:
    """``items`` in consecutive batches of at most ``batch_size``.

    Examples
    --------
    >>> split([1, 2, 3, 4, 5], 2)
    [[1, 2], [3, 4], [5]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    items = list(items)
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def check_results(batch: Sequence[Any], results: Any) -> list[Any]:
    """The worker's results as a list, checked to have one per item."""
    if not isinstance(results, list) or len(results) != len(batch):
        got = len(results) if isinstance(results, list) else type(results).__name__
        raise TypeError(f"a batch worker must return one result per item: {len(batch)} != {got}")
    return results


def close_worker(worker: object) -> None:
    """Call the worker's ``close()`` if it has one."""
    close = getattr(worker, "close", None)
    if callable(close):
        close()


class BatchRun(Generic[T, R]):
    """One mapping: a context manager (leaving it stops the workers) and an iterator of
    ``(item, result)`` pairs in the order batches finish."""

    def __enter__(self) -> BatchRun[T, R]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[T, R]]:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers (idempotent)."""


class BatchMapper(Protocol):
    """Where a job's batches run (chosen by the executor that runs the job)."""

    def map_batches(
        self,
        ctx: Context,
        factory: WorkerFactory[T, R],
        items: Sequence[T],
        *,
        batch_size: int,
        cancelled: Callable[[], bool] | None = None,
    ) -> BatchRun[T, R]:
        """Run ``factory(ctx)(batch)`` over ``items`` in batches of ``batch_size``."""


class _InlineRun(BatchRun[T, R]):
    def __init__(
        self,
        ctx: Context,
        factory: WorkerFactory[T, R],
        batches: list[list[T]],
        cancelled: Callable[[], bool] | None,
    ) -> None:
        self._ctx = ctx
        self._factory = factory
        self._batches = batches
        self._cancelled = cancelled
        self._worker: Callable[[list[T]], list[R]] | None = None

    def __iter__(self) -> Iterator[tuple[T, R]]:
        for batch in self._batches:
            if self._cancelled is not None and self._cancelled():
                raise JobCancelled()
            if self._worker is None:
                self._worker = self._factory(self._ctx)
            results = check_results(batch, self._worker(batch))
            yield from zip(batch, results, strict=True)

    def close(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            close_worker(worker)


class InlineMapper:
    """Batches one after the other in the calling thread, with one worker (loaded on the
    first batch): the local executor's way."""

    def map_batches(
        self,
        ctx: Context,
        factory: WorkerFactory[T, R],
        items: Sequence[T],
        *,
        batch_size: int,
        cancelled: Callable[[], bool] | None = None,
    ) -> BatchRun[T, R]:
        return _InlineRun(ctx, factory, split(items, batch_size), cancelled)
