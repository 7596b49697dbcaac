"""The simulated annotator on a volume, through a 3D interactive session.

Prompt 1 is the reference's 3D box (its rectangle jittered like a 2D box if asked):
the engine segments the slice where the reference is largest and propagates through
the box's slices (:class:`~medlabel.engines.interactive.volume_session.VolumeSession`).
Each next prompt is a click at the centre of the largest 3D error region
(:func:`~medlabel.quality.prompts_sim.next_click`), which corrects the stacked logits
in 3D. Dice is 3D Dice; time per prompt is the session's wall time.

Engines that segment a whole volume from a 3D box (``volumetric`` and requiring a box,
such as ``trained-model``) need no session: every prompt is one stateless request for
the whole volume (``index`` None) carrying the 3D box, every click so far and the
current mask (:func:`simulate_volumetric_case`); the slice axis only decides how the
box is jittered (in the slice's plane) and on which slice the trace starts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from medlabel.engines.base import AnnotationEngine, EngineRequest, Point
from medlabel.imaging.volume import Volume
from medlabel.quality.prompts_sim import apply_box_offsets, next_click, sample_box_offsets

if TYPE_CHECKING:
    from medlabel.quality.interactive_sim import SimOptions, Trace


def simulate_volume_case(
    engine: AnnotationEngine,
    volume: Volume,
    reference: np.ndarray,
    options: SimOptions,
    rng: np.random.Generator,
) -> Trace:
    """Run the protocol on one structure of a volume (see the module docstring)."""
    from medlabel.engines.interactive.volume_session import VolumeSession
    from medlabel.quality.interactive_sim import StopReason

    ref = np.asarray(reference, bool)
    axis = options.axis
    trace, box = _start(ref, options, rng)
    start = trace.start_index
    session = VolumeSession(engine, volume, axis=axis, params=options.params)
    current = np.zeros(ref.shape, bool)
    for k in range(options.max_prompts):
        step: Callable[[], np.ndarray]
        if k == 0:
            step = partial(session.start, box, index=start)
        else:
            click = next_click(ref, current, axis=axis, spacing=volume.spacing)
            if click is None:
                trace.stopped = StopReason.NO_ERROR
                break
            trace.add_click(click, k + 1)
            point = (float(click.point[0]), float(click.point[1]), float(click.point[2]))
            step = partial(session.click, point, click.positive)
        current, done = trace.answer(ref, current, step, options.stop_dice)
        if done:
            break
    return trace


def _start(
    ref: np.ndarray, options: SimOptions, rng: np.random.Generator
) -> tuple[Trace, tuple[Point, Point]]:
    """A trace starting on the slice where the reference is largest, with prompt 1: the
    reference's 3D box, its rectangle in the slice plane jittered if asked."""
    from medlabel.quality.interactive_sim import SliceBox, Trace

    axis = options.axis
    others = tuple(ax for ax in range(3) if ax != axis)
    start = int(np.argmax(ref.sum(axis=others)))
    trace = Trace(start_index=start)
    idx = np.argwhere(ref)
    lo, hi = idx.min(axis=0).astype(float), idx.max(axis=0).astype(float)
    offsets = None
    if options.jitter > 0:
        box2d = (lo[others[0]], lo[others[1]], hi[others[0]], hi[others[1]])
        offsets = sample_box_offsets(box2d, options.jitter, rng)
        shape2d = (ref.shape[others[0]], ref.shape[others[1]])
        r0, c0, r1, c1 = apply_box_offsets(box2d, offsets, shape2d)
        lo[others[0]], lo[others[1]], hi[others[0]], hi[others[1]] = r0, c0, r1, c1
    box: tuple[Point, Point] = (
        (float(lo[0]), float(lo[1]), float(lo[2])),
        (float(hi[0]), float(hi[1]), float(hi[2])),
    )
    trace.boxes.append(SliceBox(1, start, box, offsets))
    return trace, box


def simulate_volumetric_case(
    engine: AnnotationEngine,
    volume: Volume,
    reference: np.ndarray,
    options: SimOptions,
    rng: np.random.Generator,
) -> Trace:
    """Run the protocol on one structure of a volume with an engine that segments the
    whole volume from a 3D box: each prompt is one request with the box, every click so
    far (in the forms the engine takes) and the current mask as ``previous``."""
    from medlabel.quality.interactive_sim import StopReason, build_request, takes_click

    ref = np.asarray(reference, bool)
    axis = options.axis
    trace, box = _start(ref, options, rng)
    current = np.zeros(ref.shape, bool)
    for k in range(options.max_prompts):
        if k > 0:
            click = next_click(ref, current, axis=axis, spacing=volume.spacing)
            if click is None:
                trace.stopped = StopReason.NO_ERROR
                break
            if not takes_click(engine, click.positive):
                trace.stopped = StopReason.UNSUPPORTED_PROMPT
                break
            trace.add_click(click, k + 1)
        request = build_request(
            engine,
            ref.shape,
            axis=axis,
            index=None,
            box=box,
            clicks=trace.clicks,
            previous=current,
            params=options.params,
        )
        step = partial(_whole, engine, volume, request, (ref.shape[0], ref.shape[1], ref.shape[2]))
        current, done = trace.answer(ref, current, step, options.stop_dice)
        if done:
            break
    return trace


def _whole(
    engine: AnnotationEngine, volume: Volume, request: EngineRequest, shape: tuple[int, int, int]
) -> np.ndarray:
    """A volumetric engine's answer as a full-size mask."""
    from medlabel.engines.runner import run as run_engine

    return run_engine(engine, volume, request).full(shape)
