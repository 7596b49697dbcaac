"""The simulated-annotator benchmark of an engine: prompts as a careful person gives
them, Dice after each, and the prompts needed to reach Dice 0.85 and 0.90 (NoC).

Protocol (as in the interactive-segmentation literature), per structure:

1. The first prompt (:class:`FirstPrompt`, default ``box``) is the box of the reference
   (jittered if asked: each edge shifted by up to ``jitter`` × the box's height or
   width, offsets recorded); a positive click at the reference's innermost point
   replaces it for an engine without boxes, and joins it for an engine that requires
   another prompt kind than boxes (e.g. a seed point). ``box-click`` always adds the
   click, ``click`` gives the click alone.
2. Each next prompt is a click at the centre (farthest point from the border) of the
   largest error region: positive in a miss, negative in a false positive
   (:func:`~medlabel.quality.prompts_sim.next_click`).
3. Every call is stateless: it carries all prompts so far, adapted to what the engine
   takes (``engine.prompts``): clicks as clicks, else as discs of 3 px radius in the
   foreground/background scribbles, and the current mask as ``previous``.
4. Prompting stops at ``1 + max_clicks`` prompts, once Dice ≥ ``stop_dice``, when nothing
   is left to correct, when the engine cannot take the next correction in any form
   (e.g. a negative click for a tool without negative prompts: repeating the same
   request would change nothing), or when the engine rejects a prompt (the case keeps
   its last mask, Dice 0 if none, and records the error). A stopped case carries its
   last Dice forward in the summaries.

Volumes (engines with a ``propagate`` parameter, such as ``litemedsam``) go through a
3D session (:mod:`medlabel.quality.interactive_volume`): prompt 1 is the reference's 3D
box, segmented on the slice where the reference is largest and propagated through the
box's slices; each click corrects the mask in 3D. Passing a ``propagate`` function
instead replays the slice-wise protocol: a correction goes to the slice where the
largest 3D error region is widest, with that slice's clicks (and its box) and the
current mask as ``previous``; the slice is replaced and propagated again. Dice is 3D
Dice. Time per prompt is wall time of the engine calls, propagation included.
Engines that segment a whole volume from a 3D box (:func:`takes_3d_box`, such as
``trained-model``) need no propagation: each prompt is one request for the volume with
the 3D box and every click so far (:func:`~.interactive_volume.simulate_volumetric_case`).
"""

from __future__ import annotations

import importlib
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

import numpy as np

from medlabel.core.errors import MedlabelError, MissingDependencyError
from medlabel.engines.base import AnnotationEngine, EngineRequest, Point, PromptKind
from medlabel.engines.runner import run as run_engine
from medlabel.imaging.volume import Volume
from medlabel.quality.overlap import dice
from medlabel.quality.prompts_sim import (
    Box2D,
    Click,
    apply_box_offsets,
    bounding_box,
    centre_point,
    next_click,
    sample_box_offsets,
    scribble,
)

#: radius in pixels of the disc a click becomes for scribble-only engines
SCRIBBLE_RADIUS = 3.0

Propagate = Callable[..., np.ndarray]


class StopReason(StrEnum):
    """Why prompting a case ended."""

    MAX_PROMPTS = "max_prompts"
    STOP_DICE = "stop_dice"
    NO_ERROR = "no_error"
    UNSUPPORTED_PROMPT = "unsupported_prompt"
    ENGINE_ERROR = "engine_error"


class FirstPrompt(StrEnum):
    """What the simulated annotator gives first."""

    BOX = "box"  # the box (with a click only if the engine cannot start from a box)
    BOX_CLICK = "box-click"  # the box and a positive click at the innermost point
    CLICK = "click"  # a positive click at the innermost point


@dataclass(frozen=True)
class SimOptions:
    """Settings of a simulated-annotator run.

    Parameters
    ----------
    max_clicks
        Corrective clicks after the first prompt; at most ``1 + max_clicks`` prompts.
    jitter
        Box edges move by up to this fraction of the box's height or width (0: exact box).
    seed
        Seed of the jitter (each case draws from ``(seed, crc32 of its id)``).
    stop_dice
        Stop prompting a case once its Dice reaches this.
    first_prompt
        Box, box and click, or click first (:class:`FirstPrompt`).
    axis
        Array axis of the slices prompted in volumes (0 plane, 1 row, 2 column).
    labels
        Label values of multi-label masks to benchmark, each a separate case (``None``:
        every non-zero value).
    limit
        Only the first ``limit`` pairs by name.
    mask_suffix
        Removed from mask file stems before pairing.
    params
        Engine parameters by name.
    """

    max_clicks: int = 20
    jitter: float = 0.0
    seed: int = 0
    stop_dice: float = 0.99
    first_prompt: FirstPrompt | str = FirstPrompt.BOX
    axis: int = 0
    labels: tuple[int, ...] | None = None
    limit: int | None = None
    mask_suffix: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "first_prompt", FirstPrompt(self.first_prompt))
        except ValueError:
            choices = ", ".join(f.value for f in FirstPrompt)
            raise ValueError(
                f"first prompt must be one of {choices}; got {self.first_prompt!r}"
            ) from None
        if self.max_clicks < 0:
            raise ValueError(f"max_clicks must be >= 0, got {self.max_clicks}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be a fraction in [0, 1], got {self.jitter}")
        if not 0.0 < self.stop_dice <= 1.0:
            raise ValueError(f"stop_dice must be in (0, 1], got {self.stop_dice}")
        if self.axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, got {self.axis}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.labels is not None and (not self.labels or min(self.labels) < 1):
            raise ValueError(f"labels must be positive integers, got {list(self.labels)}")

    @property
    def max_prompts(self) -> int:
        """The first prompt plus ``max_clicks`` corrections."""
        return 1 + self.max_clicks


@dataclass(frozen=True)
class SliceBox:
    """A box the simulated annotator drew: at which prompt (1-based), on which slice,
    its corners in voxel coordinates and the jitter offsets applied to its edges
    (``(row0, col0, row1, col1)`` on the slice, pixels; ``None`` without jitter)."""

    prompt: int
    index: int
    box: tuple[Point, Point]
    offsets: Box2D | None


@dataclass
class Trace:
    """What happened to one case: Dice and seconds per prompt, the prompts given.

    ``dice`` and ``seconds`` have one entry per prompt answered; ``clicks[i]`` was given
    at prompt ``click_prompts[i]``; ``start_index`` is the slice of the first prompt.
    """

    start_index: int
    dice: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    boxes: list[SliceBox] = field(default_factory=list)
    clicks: list[Click] = field(default_factory=list)
    click_prompts: list[int] = field(default_factory=list)
    stopped: StopReason = StopReason.MAX_PROMPTS
    error: str | None = None

    @property
    def box(self) -> tuple[Point, Point] | None:
        """The box of the first prompt, if it had one."""
        first = self.boxes[0] if self.boxes else None
        return first.box if first is not None and first.prompt == 1 else None

    def box_on(self, index: int) -> tuple[Point, Point] | None:
        """The box drawn on slice ``index``, if any."""
        return next((b.box for b in self.boxes if b.index == index), None)

    def add_click(self, click: Click, prompt: int) -> None:
        self.clicks.append(click)
        self.click_prompts.append(prompt)

    def answer(
        self,
        ref: np.ndarray,
        current: np.ndarray,
        step: Callable[[], np.ndarray],
        stop_dice: float,
    ) -> tuple[np.ndarray, bool]:
        """Run one prompt's ``step`` and record its seconds and Dice against ``ref``;
        returns the new mask and whether the case ends (the engine refused, or
        ``stop_dice`` was reached)."""
        t0 = time.perf_counter()
        try:
            current = step()
        except (ValueError, MedlabelError) as exc:
            self.stopped = StopReason.ENGINE_ERROR
            self.error = str(exc)
            if not self.dice:
                self.dice.append(dice(ref, current))
            return current, True
        self.seconds.append(time.perf_counter() - t0)
        self.dice.append(dice(ref, current))
        if self.dice[-1] >= stop_dice:
            self.stopped = StopReason.STOP_DICE
            return current, True
        return current, False


def noc(dice_per_prompt: Sequence[float], threshold: float, max_prompts: int) -> int:
    """Number of prompts until Dice ≥ ``threshold``; ``max_prompts`` if never reached.

    Examples
    --------
    >>> noc([0.7, 0.86, 0.93], 0.85, 21), noc([0.7, 0.86, 0.93], 0.90, 21)
    (2, 3)
    >>> noc([0.5, 0.6], 0.90, 21)
    21
    """
    for k, d in enumerate(dice_per_prompt[:max_prompts]):
        if d >= threshold:
            return k + 1
    return max_prompts


def _validate_inputs(volume: Volume, reference: np.ndarray) -> None:
    if reference.shape != volume.spatial_shape:
        raise ValueError(
            f"reference shape {reference.shape} differs from the image's spatial shape "
            f"{volume.spatial_shape}"
        )
    if not reference.any():
        raise ValueError("the reference mask is empty: there is nothing to segment")


def _propagator() -> Propagate:
    name = "medlabel.engines.interactive.propagation"
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"volumes need slice propagation ({name}), which cannot be imported: {exc}"
        ) from None
    fn: Propagate = module.propagate
    return fn


def prompt_kinds(request: EngineRequest) -> frozenset[PromptKind]:
    """The prompt kinds ``request`` carries (empty masks do not count)."""
    given = {
        kind
        for kind, present in (
            (PromptKind.BOX, request.box is not None),
            (PromptKind.POSITIVE, bool(request.positive)),
            (PromptKind.NEGATIVE, bool(request.negative)),
            (PromptKind.FOREGROUND, request.foreground is not None),
            (PromptKind.BACKGROUND, request.background is not None),
            (PromptKind.PREVIOUS, request.previous is not None),
        )
        if present
    }
    return frozenset(given)


def takes_click(engine: AnnotationEngine, positive: bool) -> bool:
    """Whether ``engine`` takes a click of this sign as a click or as a scribble."""
    if positive:
        return bool({PromptKind.POSITIVE, PromptKind.FOREGROUND} & engine.prompts)
    return bool({PromptKind.NEGATIVE, PromptKind.BACKGROUND} & engine.prompts)


def build_request(
    engine: AnnotationEngine,
    shape: tuple[int, int, int],
    *,
    axis: int,
    index: int | None,
    box: tuple[Point, Point] | None,
    clicks: Sequence[Click],
    previous: np.ndarray | None,
    params: Mapping[str, Any],
) -> EngineRequest:
    """The accumulated prompts of one slice (``index`` None: of the whole volume), in
    the forms ``engine`` takes.

    Boxes only if it takes boxes; clicks as clicks, or else as scribble discs of
    :data:`SCRIBBLE_RADIUS` pixels; ``previous`` only if it takes it and it is not empty.
    Prompts the engine cannot take in any form are left out.
    """
    kinds = engine.prompts
    req: dict[str, Any] = {"axis": axis, "index": index, "params": dict(params)}
    if box is not None and PromptKind.BOX in kinds:
        req["box"] = box
    for positive, click_kind, scribble_kind, name in (
        (True, PromptKind.POSITIVE, PromptKind.FOREGROUND, "foreground"),
        (False, PromptKind.NEGATIVE, PromptKind.BACKGROUND, "background"),
    ):
        points = [c.point for c in clicks if c.positive is positive]
        if not points:
            continue
        if click_kind in kinds:
            req[click_kind.value] = tuple(tuple(float(v) for v in p) for p in points)
        elif scribble_kind in kinds:
            req[name] = scribble(shape, points, axis=axis, radius=SCRIBBLE_RADIUS)
    if previous is not None and PromptKind.PREVIOUS in kinds and previous.any():
        req["previous"] = previous
    return EngineRequest(**req)


def _on_slice(box: Box2D, axis: int, index: int) -> tuple[Point, Point]:
    corners = []
    for a, b in ((box[0], box[1]), (box[2], box[3])):
        p = [0.0, 0.0, 0.0]
        others = [ax for ax in range(3) if ax != axis]
        p[axis], p[others[0]], p[others[1]] = float(index), a, b
        corners.append((p[0], p[1], p[2]))
    return corners[0], corners[1]


def simulate_case(
    engine: AnnotationEngine,
    volume: Volume,
    reference: np.ndarray,
    options: SimOptions,
    rng: np.random.Generator,
    *,
    propagate: Propagate | None = None,
) -> Trace:
    """Prompt ``engine`` on one structure as the protocol says (see the module docstring).

    Parameters
    ----------
    engine
        Any engine; it is driven through :func:`medlabel.engines.runner.run`.
    volume
        The image: one plane for a 2D image (prompted on axis 0, slice 0), else a volume.
    reference
        Boolean reference mask of the volume's spatial shape, not empty.
    options
        Prompt budget, jitter, stop rule and slice axis.
    rng
        Source of the box jitter (unused when ``options.jitter`` is 0).
    propagate
        Slice propagation for volumes (default: the engines' own).

    Returns
    -------
    Trace
        Dice and seconds per prompt (one entry per prompt given), the prompts, why it
        stopped.

    Raises
    ------
    ValueError
        If the reference is empty or its shape differs from the image's, or for a
        volume, if the engine cannot be propagated (:func:`propagation_problem`).
    MissingDependencyError
        For a volume, if slice propagation cannot be imported.
    """
    ref = np.asarray(reference, bool)
    _validate_inputs(volume, ref)
    shape = volume.spatial_shape
    axis = options.axis if not volume.is_2d else 0
    if not volume.is_2d and propagate is None and takes_3d_box(engine):
        from medlabel.quality.interactive_volume import simulate_volumetric_case

        return simulate_volumetric_case(engine, volume, ref, options, rng)
    if not volume.is_2d and propagate is None:
        problem = propagation_problem(engine)
        if problem:
            raise ValueError(problem)
        _propagator()  # fails clearly if the interactive engines cannot be imported
        from medlabel.quality.interactive_volume import simulate_volume_case

        return simulate_volume_case(engine, volume, ref, options, rng)
    first = FirstPrompt(options.first_prompt)
    draws_boxes = PromptKind.BOX in engine.prompts and first is not FirstPrompt.CLICK
    others = tuple(ax for ax in range(3) if ax != axis)
    trace = Trace(start_index=int(np.argmax(ref.sum(axis=others))))
    start = trace.start_index
    if draws_boxes:
        trace.boxes.append(_reference_box(ref, options, rng, axis=axis, index=start, prompt=1))
    box_suffices = not engine.required or PromptKind.BOX in engine.required
    if not draws_boxes or not box_suffices or first is FirstPrompt.BOX_CLICK:
        inner = np.take(ref, start, axis=axis)
        a, b = centre_point(inner, (volume.spacing[others[0]], volume.spacing[others[1]]))
        p = [0, 0, 0]
        p[axis], p[others[0]], p[others[1]] = start, a, b
        trace.add_click(Click((p[0], p[1], p[2]), True), 1)

    current = np.zeros(shape, bool)
    for k in range(options.max_prompts):
        index = start
        if k > 0:
            click = next_click(ref, current, axis=axis, spacing=volume.spacing)
            if click is None:
                trace.stopped = StopReason.NO_ERROR
                break
            if not takes_click(engine, click.positive):
                trace.stopped = StopReason.UNSUPPORTED_PROMPT
                break
            index = click.point[axis]
            empty = not np.take(current, index, axis=axis).any()
            if draws_boxes and empty and trace.box_on(index) is None:
                box = _reference_box(ref, options, rng, axis=axis, index=index, prompt=k + 1)
                trace.boxes.append(box)
            trace.add_click(click, k + 1)
        request = build_request(
            engine,
            shape,
            axis=axis,
            index=index,
            box=trace.box_on(index),
            clicks=[c for c in trace.clicks if c.point[axis] == index],
            previous=current,
            params=options.params,
        )
        if k > 0 and engine.required and not prompt_kinds(request) & engine.required:
            trace.stopped = StopReason.UNSUPPORTED_PROMPT  # e.g. no seed on a new slice
            break
        step = partial(_answer, engine, volume, request, current, propagate)
        current, done = trace.answer(ref, current, step, options.stop_dice)
        if done:
            break
    return trace


def takes_3d_box(engine: AnnotationEngine) -> bool:
    """Whether ``engine`` segments a whole volume from a 3D box (``volumetric`` and a
    box among its required prompts), so a volume needs no slice propagation."""
    return bool(engine.volumetric and PromptKind.BOX in engine.required)


def propagation_problem(engine: AnnotationEngine) -> str | None:
    """Why ``engine`` cannot be benchmarked on a volume, or ``None`` if it can.

    Slice propagation asks the engine for each next slice with the previous slice's
    mask and the ``propagate`` parameter, which only engines built for it take; engines
    that take a 3D box (:func:`takes_3d_box`) segment the volume at once.
    """
    if takes_3d_box(engine) or any(p.name == "propagate" for p in engine.params):
        return None
    return (
        f"engine {engine.name!r} cannot be propagated through volumes (it has no "
        "'propagate' parameter) and does not segment a volume from a 3D box; benchmark "
        "volumes with an engine that does, e.g. litemedsam or trained-model"
    )


def _reference_box(
    ref: np.ndarray,
    options: SimOptions,
    rng: np.random.Generator,
    *,
    axis: int,
    index: int,
    prompt: int,
) -> SliceBox:
    """The reference's box on slice ``index``, jittered if the options say so."""
    ref_slice = np.take(ref, index, axis=axis)
    box2d = bounding_box(ref_slice)
    offsets = None
    if options.jitter > 0:
        offsets = sample_box_offsets(box2d, options.jitter, rng)
        box2d = apply_box_offsets(box2d, offsets, (ref_slice.shape[0], ref_slice.shape[1]))
    return SliceBox(prompt, index, _on_slice(box2d, axis, index), offsets)


def _answer(
    engine: AnnotationEngine,
    volume: Volume,
    request: EngineRequest,
    current: np.ndarray,
    propagate: Propagate | None,
) -> np.ndarray:
    """The mask after the engine's answer: its proposal (2D), or the current mask with
    the request's slice replaced and propagated through the volume."""
    mask = run_engine(engine, volume, request).full(volume.spatial_shape)
    if propagate is None:
        return mask
    assert request.index is not None
    idx: list[int | slice] = [slice(None)] * 3
    idx[request.axis] = request.index
    merged = current.copy()
    merged[tuple(idx)] = mask[tuple(idx)]
    out = propagate(engine, volume, merged, axis=request.axis, index=request.index)
    return np.asarray(out, bool)


def case_rng(seed: int, case_id: str) -> tuple[np.random.Generator, list[int]]:
    """The jitter generator of a case and its seed sequence ``[seed, crc32(case_id)]``,
    independent of which other cases run.

    Examples
    --------
    >>> rng, entropy = case_rng(0, "img_01:1")
    >>> entropy == case_rng(0, "img_01:1")[1], rng.random() == case_rng(0, "img_01:1")[0].random()
    (True, True)
    """
    entropy = [int(seed), zlib.crc32(case_id.encode())]
    return np.random.default_rng(entropy), entropy


def trace_json(trace: Trace) -> dict[str, Any]:
    """A trace as JSON-ready values (``box``/``box_offsets``: those of the first prompt)."""
    first = trace.boxes[0] if trace.boxes and trace.boxes[0].prompt == 1 else None
    return {
        "start_index": trace.start_index,
        "prompts": len(trace.dice),
        "stopped": trace.stopped.value,
        "error": trace.error,
        "box": None if first is None else [list(c) for c in first.box],
        "box_offsets": None if first is None or first.offsets is None else list(first.offsets),
        "boxes": [
            {
                "prompt": b.prompt,
                "index": b.index,
                "box": [list(c) for c in b.box],
                "offsets": None if b.offsets is None else list(b.offsets),
            }
            for b in trace.boxes
        ],
        "clicks": [
            {"prompt": n, "point": list(c.point), "positive": c.positive}
            for c, n in zip(trace.clicks, trace.click_prompts, strict=True)
        ],
    }
