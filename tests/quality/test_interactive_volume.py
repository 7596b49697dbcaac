"""The simulated annotator on volumes with an engine that segments the whole volume from
a 3D box: one stateless request per prompt, carrying the box and every click so far."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from medlabel.engines.base import EngineRequest, PromptKind, Proposal
from medlabel.imaging.volume import Volume
from medlabel.quality.interactive_sim import (
    SimOptions,
    StopReason,
    propagation_problem,
    simulate_case,
    takes_3d_box,
)


@dataclass
class BoxCube:
    """Fills the box, then adds each positive click's voxel and removes each negative
    one's; records the requests it got."""

    name: str = "box-cube"
    version: str = "1"
    title: str = ""
    description: str = ""
    prompts: frozenset[PromptKind] = frozenset(
        {PromptKind.BOX, PromptKind.POSITIVE, PromptKind.NEGATIVE, PromptKind.PREVIOUS}
    )
    required: frozenset[PromptKind] = frozenset({PromptKind.BOX})
    params: tuple = ()
    volumetric: bool = True
    requests: list[EngineRequest] = field(default_factory=list)

    def run(self, volume: Volume, request: EngineRequest) -> Proposal:
        self.requests.append(request)
        out = np.zeros(volume.spatial_shape, bool)
        assert request.box is not None
        a, b = (np.asarray(c).round().astype(int) for c in request.box)
        out[a[0] : b[0] + 1, a[1] : b[1] + 1, a[2] : b[2] + 1] = True
        for pts, value in ((request.positive, True), (request.negative, False)):
            for p in pts:
                out[tuple(round(v) for v in p)] = value
        return Proposal(mask=out)


def test_which_engines_take_a_3d_box() -> None:
    assert takes_3d_box(BoxCube()) and propagation_problem(BoxCube()) is None
    slice_only = BoxCube(volumetric=False)
    assert not takes_3d_box(slice_only)
    assert "cannot be propagated" in (propagation_problem(slice_only) or "")
    seeded = BoxCube(required=frozenset({PromptKind.POSITIVE}))  # e.g. region growing
    assert not takes_3d_box(seeded)


def test_every_prompt_is_one_volume_request_with_all_clicks() -> None:
    vol = Volume.from_spacing(np.zeros((8, 10, 10), np.float32))
    ref = np.zeros((8, 10, 10), bool)
    ref[2:6, 3:7, 3:7] = True
    ref[2, 3, 3] = ref[5, 6, 6] = False  # two corners the box overfills: two negative clicks
    eng = BoxCube()
    opts = SimOptions(max_clicks=3, stop_dice=1.0)
    trace = simulate_case(eng, vol, ref, opts, np.random.default_rng(0))
    assert trace.error is None and trace.stopped is StopReason.STOP_DICE
    assert len(eng.requests) == 3 and all(r.index is None for r in eng.requests)
    assert trace.boxes[0].box == ((2.0, 3.0, 3.0), (5.0, 6.0, 6.0))
    assert {c.point for c in trace.clicks} == {(2, 3, 3), (5, 6, 6)}
    assert not any(c.positive for c in trace.clicks)
    # each request repeats the box and carries every click so far
    assert [len(r.positive) + len(r.negative) for r in eng.requests] == list(
        range(len(eng.requests))
    )
    assert all(r.box == trace.boxes[0].box for r in eng.requests)
    assert trace.dice[-1] == pytest.approx(1.0) and trace.dice[0] < 1.0
    assert len(trace.seconds) == len(trace.dice) == len(eng.requests)
