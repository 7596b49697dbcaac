"""The simulated annotator on a volume, through a 3D interactive session.

Prompt 1 is the reference's 3D box (its rectangle jittered like a 2D box if asked):
the engine segments the slice where the reference is largest and propagates through
the box's slices (:class:`~medlabel.engines.interactive.volume_session.VolumeSession`).
Each next prompt is a click at the centre of the largest 3D error region
(:func:`~medlabel.quality.prompts_sim.next_click`), which corrects the stacked logits
in 3D. Dice is 3D Dice; time per prompt is the session's wall time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from medlabel.core.errors import MedlabelError
from medlabel.engines.base import AnnotationEngine, Point
from medlabel.imaging.volume import Volume
from medlabel.quality.overlap import dice
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
    from medlabel.quality.interactive_sim import SliceBox, StopReason, Trace

    ref = np.asarray(reference, bool)
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
    session = VolumeSession(engine, volume, axis=axis, params=options.params)
    current = np.zeros(ref.shape, bool)
    for k in range(options.max_prompts):
        t0 = time.perf_counter()
        try:
            if k == 0:
                current = session.start(box, index=start)
            else:
                click = next_click(ref, current, axis=axis, spacing=volume.spacing)
                if click is None:
                    trace.stopped = StopReason.NO_ERROR
                    break
                trace.add_click(click, k + 1)
                point = (float(click.point[0]), float(click.point[1]), float(click.point[2]))
                current = session.click(point, click.positive)
        except (ValueError, MedlabelError) as exc:
            trace.stopped = StopReason.ENGINE_ERROR
            trace.error = str(exc)
            if not trace.dice:
                trace.dice.append(dice(ref, current))
            break
        trace.seconds.append(time.perf_counter() - t0)
        trace.dice.append(dice(ref, current))
        if trace.dice[-1] >= options.stop_dice:
            trace.stopped = StopReason.STOP_DICE
            break
    return trace
