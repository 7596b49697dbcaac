"""``medlabel bench interactive``: an engine against a labelled data set, every
structure of every image prompted by the simulated annotator
(:mod:`medlabel.quality.interactive_sim`)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.core.errors import InvalidInputError
from medlabel.engines.base import AnnotationEngine
from medlabel.engines.registry import EngineRegistry
from medlabel.quality.interactive_report import (
    BenchReport,
    CaseResult,
    Skipped,
    machine,
    now_utc,
)
from medlabel.quality.interactive_sim import (
    SimOptions,
    case_rng,
    propagation_problem,
    simulate_case,
)
from medlabel.quality.manual_baseline import ManualBaseline, manual_vertices
from medlabel.quality.pairs import load_image, load_labels, pair_files

log = logging.getLogger(__name__)

#: called after each image with (images done, images in all, name of the image)
Progress = Callable[[int, int, str], None]


def _engine(name: str, registry: EngineRegistry | None) -> AnnotationEngine:
    if registry is None:
        from medlabel.engines.registry import default_registry

        registry = default_registry()
    return registry.get(name)


def _check_params(engine: AnnotationEngine, params: dict[str, Any]) -> None:
    known = {p.name: p for p in engine.params}
    for key, value in params.items():
        if key not in known:
            raise InvalidInputError(
                f"engine {engine.name!r} has no parameter {key!r} "
                f"(it has: {', '.join(known) or 'none'})"
            )
        try:
            known[key].parse(value)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None


def _baseline(
    cache: dict[tuple[str, int, int], ManualBaseline] | None,
    mask: str,
    label: int,
    axis: int,
    reference: np.ndarray,
) -> ManualBaseline:
    key = (mask, label, axis)
    if cache is not None and key in cache:
        return cache[key]
    out = manual_vertices(reference, axis=axis)
    if cache is not None:
        cache[key] = out
    return out


def run_benchmark(
    images: Path,
    masks: Path,
    engine: str,
    options: SimOptions | None = None,
    *,
    registry: EngineRegistry | None = None,
    progress: Progress | None = None,
    baselines: dict[tuple[str, int, int], ManualBaseline] | None = None,
) -> BenchReport:
    """Benchmark ``engine`` on the pairs of ``images`` and ``masks``.

    Parameters
    ----------
    images, masks
        Folders paired by file stem (:func:`~medlabel.quality.pairs.pair_files`).
    engine
        Engine name in ``registry``.
    options
        Prompt budget, jitter, labels, limit... (:class:`SimOptions`).
    registry
        Where to find the engine (default: every engine medlabel ships).
    progress
        Called after each image.
    baselines
        Manual baselines by ``(mask path, label, axis)``, filled as they are computed;
        pass the same dict to runs of several engines on one data set to compute each
        once (they depend on the reference only).

    Returns
    -------
    BenchReport
        Per-case results and the summary; ``to_json()`` gives the report file.

    Raises
    ------
    NotFoundError
        A folder or the engine does not exist.
    InvalidInputError
        No pairs, an unreadable mask, a mask whose shape differs from its image's, a bad
        engine parameter, no structure to benchmark, or volumes with an engine that
        cannot be propagated slice to slice.
    MissingDependencyError
        The engine's optional extra is not installed, or slice propagation is missing.
    """
    options = options or SimOptions()
    pairing = pair_files(Path(images), Path(masks), mask_suffix=options.mask_suffix)
    pairs = pairing.pairs[: options.limit] if options.limit else pairing.pairs
    eng = _engine(engine, registry)
    _check_params(eng, dict(options.params))
    cases: list[CaseResult] = []
    skipped: list[Skipped] = []
    for done, pair in enumerate(pairs, start=1):
        volume = load_image(pair.image)
        labels = load_labels(pair.mask, volume.spatial_shape)
        present = [int(v) for v in np.unique(labels) if v != 0]
        wanted = list(options.labels) if options.labels is not None else present
        axis = 0 if volume.is_2d else options.axis
        problem = None if volume.is_2d else propagation_problem(eng)
        if problem:
            raise InvalidInputError(f"{pair.image.name} is a volume: {problem}")
        for label in wanted:
            reference = labels == label
            if not reference.any():
                skipped.append(Skipped(pair.name, label, "label absent from the mask"))
                continue
            rng, entropy = case_rng(options.seed, f"{pair.name}:{label}")
            trace = simulate_case(eng, volume, reference, options, rng)
            if trace.error:
                log.warning("%s label %d: engine error: %s", pair.name, label, trace.error)
            cases.append(
                CaseResult(
                    name=pair.name,
                    label=label,
                    image=str(pair.image),
                    mask=str(pair.mask),
                    shape=volume.spatial_shape,
                    trace=trace,
                    manual=_baseline(baselines, str(pair.mask), label, axis, reference),
                    jitter_seed=tuple(entropy),
                )
            )
        if progress is not None:
            progress(done, len(pairs), pair.name)
    if not cases:
        which = f"labels {list(options.labels)}" if options.labels else "a structure"
        raise InvalidInputError(f"none of the {len(pairs)} mask(s) contains {which}")
    opts = dataclasses.asdict(options)
    opts["params"] = dict(options.params)
    opts["labels"] = None if options.labels is None else list(options.labels)
    return BenchReport(
        engine=eng.name,
        engine_version=eng.version,
        images=str(images),
        masks=str(masks),
        options=opts,
        pairs=len(pairs),
        unmatched_images=len(pairing.unmatched_images),
        unmatched_masks=len(pairing.unmatched_masks),
        cases=tuple(cases),
        skipped=tuple(skipped),
        date_utc=now_utc(),
        machine=machine(),
    )
