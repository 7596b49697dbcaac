"""Check a request against an engine, run it, and stamp the proposal with provenance."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from medlabel.engines.base import AnnotationEngine, EngineRequest, PromptKind, Proposal
from medlabel.imaging.volume import Volume


def _given(request: EngineRequest) -> set[PromptKind]:
    out = set()
    if request.box is not None:
        out.add(PromptKind.BOX)
    if request.positive:
        out.add(PromptKind.POSITIVE)
    if request.negative:
        out.add(PromptKind.NEGATIVE)
    for kind, arr in (
        (PromptKind.FOREGROUND, request.foreground),
        (PromptKind.BACKGROUND, request.background),
        (PromptKind.PREVIOUS, request.previous),
    ):
        if arr is not None and np.any(arr):
            out.add(kind)
    return out


def prepare(engine: AnnotationEngine, volume: Volume, request: EngineRequest) -> EngineRequest:
    """Validate ``request`` for ``engine`` on ``volume`` and fill parameter defaults.

    Raises
    ------
    ValueError
        Naming the problem: a missing prompt, a prompt the engine does not take, a point
        outside the image, a mask of the wrong shape, a bad parameter.
    """
    shape = volume.spatial_shape
    given = _given(request)
    unused = given - set(engine.prompts)
    if unused:
        names = ", ".join(sorted(k.value for k in unused))
        raise ValueError(f"engine {engine.name!r} does not take {names} prompts")
    if engine.required and not given & set(engine.required):
        names = " or ".join(sorted(k.value for k in engine.required))
        raise ValueError(f"engine {engine.name!r} needs a {names} prompt")
    if request.index is None and not engine.volumetric and not volume.is_2d:
        raise ValueError(f"engine {engine.name!r} works on one slice: give axis and index")
    if request.index is not None and not 0 <= request.index < shape[request.axis]:
        raise ValueError(
            f"slice {request.index} is outside 0..{shape[request.axis] - 1} "
            f"along axis {request.axis}"
        )
    points = list(request.positive) + list(request.negative) + list(request.box or ())
    for p in points:
        if len(p) != 3 or not all(np.isfinite(p)):
            raise ValueError(f"a point must be 3 finite voxel coordinates, got {p!r}")
        if not all(-0.5 <= v <= n - 0.5 for v, n in zip(p, shape, strict=True)):
            raise ValueError(f"point {list(p)} lies outside the image of shape {list(shape)}")
    for name in ("foreground", "background", "previous"):
        arr = getattr(request, name)
        if arr is not None and tuple(arr.shape) != shape:
            raise ValueError(f"{name} mask has shape {list(arr.shape)}, the image {list(shape)}")
    known = {p.name: p for p in engine.params}
    extra = set(request.params) - set(known)
    if extra:
        raise ValueError(
            f"engine {engine.name!r} has no parameter {sorted(extra)[0]!r} "
            f"(it has: {', '.join(known) or 'none'})"
        )
    params = {name: spec.default for name, spec in known.items()}
    params.update({k: known[k].parse(v) for k, v in request.params.items()})
    return dataclasses.replace(request, params=params)


def run(engine: AnnotationEngine, volume: Volume, request: EngineRequest) -> Proposal:
    """Validate, run and time ``engine``; the proposal carries name, version and prompt."""
    request = prepare(engine, volume, request)
    t0 = time.perf_counter()
    proposal = engine.run(volume, request)
    proposal.seconds = time.perf_counter() - t0
    proposal.engine = engine.name
    proposal.version = engine.version
    proposal.prompt = request.describe()
    return proposal
