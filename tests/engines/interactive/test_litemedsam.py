"""LiteMedSAM with its shipped weights on images with known truth (slow: CPU model)."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.engines import runner
from medlabel.engines.base import EngineRequest
from medlabel.engines.interactive.propagation import propagate
from medlabel.engines.interactive.volume_session import VolumeSession
from medlabel.imaging.volume import Volume
from tests.engines.classical.phantoms import ball, dice, disc_phantom

pytestmark = pytest.mark.slow


def _box(mask2d: np.ndarray, margin: int = 2) -> tuple[tuple[float, ...], tuple[float, ...]]:
    rows, cols = np.nonzero(mask2d)
    return (
        (0.0, float(rows.min() - margin), float(cols.min() - margin)),
        (0.0, float(rows.max() + margin), float(cols.max() + margin)),
    )


@pytest.fixture(scope="module")
def ct_disc() -> tuple[Volume, np.ndarray]:
    img, truth = disc_phantom((160, 160), centre=(70, 90), radii=(30, 22), inside=60, outside=-300)
    return Volume.from_spacing(img[None], spacing=(1.0, 0.8, 0.8), modality="CT"), truth


def test_box_gives_the_structure_and_provenance(litemedsam, ct_disc):
    vol, truth = ct_disc
    p = runner.run(litemedsam, vol, EngineRequest(axis=0, index=0, box=_box(truth)))
    mask = p.full(vol.spatial_shape)[0]
    assert dice(mask, truth) > 0.9
    assert p.engine == "litemedsam" and p.version and p.seconds > 0
    assert p.prompt["box"] and p.probability is not None
    assert 0.0 < p.info["predicted_iou"] <= 1.0


def test_second_prompt_on_a_slice_reuses_the_embedding(litemedsam, ct_disc):
    vol, truth = ct_disc
    runner.run(litemedsam, vol, EngineRequest(axis=0, index=0, box=_box(truth)))
    hits = litemedsam.cache.hits
    runner.run(litemedsam, vol, EngineRequest(axis=0, index=0, box=_box(truth, 6)))
    assert litemedsam.cache.hits == hits + 1


def test_clicks_correct_a_bad_box(litemedsam, ct_disc):
    vol, truth = ct_disc
    rows, cols = np.nonzero(truth)
    # a box covering only the upper half of the structure
    half = (
        (0.0, float(rows.min()), float(cols.min())),
        (0.0, float(rows.mean()), float(cols.max())),
    )
    first = runner.run(litemedsam, vol, EngineRequest(axis=0, index=0, box=half))
    before = dice(first.full(vol.spatial_shape)[0], truth)
    missed = truth & ~first.full(vol.spatial_shape)[0]
    r, c = np.argwhere(missed).mean(axis=0)
    fixed = runner.run(
        litemedsam,
        vol,
        EngineRequest(axis=0, index=0, box=half, positive=((0.0, float(r), float(c)),)),
    )
    after = dice(fixed.full(vol.spatial_shape)[0], truth)
    assert after > before
    assert fixed.prompt["positive"] == [[0.0, float(r), float(c)]]


def test_click_without_box_refines_a_previous_mask(litemedsam, ct_disc):
    vol, truth = ct_disc
    prev = np.zeros(vol.spatial_shape, bool)
    prev[0] = truth
    prev[0, :, 90:] = False  # half drawn by hand
    req = EngineRequest(axis=0, index=0, previous=prev, positive=((0.0, 70.0, 100.0),))
    out = runner.run(litemedsam, vol, req).full(vol.spatial_shape)[0]
    assert out[70, 100] and dice(out, truth) > dice(prev[0], truth)


def test_request_without_box_or_mask_is_refused(litemedsam, ct_disc):
    vol, _ = ct_disc
    with pytest.raises(ValueError, match="needs a box or previous prompt"):
        runner.run(litemedsam, vol, EngineRequest(axis=0, index=0, positive=((0.0, 5.0, 5.0),)))


def _sphere_volume() -> tuple[Volume, np.ndarray]:
    shape = (24, 64, 64)
    truth = ball(shape, (12, 32, 30), 9)
    rng = np.random.default_rng(1)
    img = np.where(truth, 300.0, 80.0) + rng.normal(0, 15, shape)
    return Volume.from_spacing(img.astype(np.float32), spacing=(1, 1, 1), modality="MR"), truth


def test_propagation_follows_a_sphere_and_stops_where_it_ends(litemedsam):
    vol, truth = _sphere_volume()
    start = np.zeros(truth.shape, bool)
    start[12] = truth[12]
    steps = []
    out = propagate(litemedsam, vol, start, axis=0, index=12, on_step=steps.append)
    assert dice(out, truth) > 0.8
    assert any(s.stop for s in steps if s.direction == 1)
    assert any(s.stop for s in steps if s.direction == -1)
    # nothing far beyond the sphere's ends
    assert not out[:2].any() and not out[-2:].any()


def test_volume_session_box_then_click(litemedsam):
    vol, truth = _sphere_volume()
    idx = np.argwhere(truth)
    session = VolumeSession(litemedsam, vol, axis=0)
    box = (tuple(map(float, idx.min(0))), tuple(map(float, idx.max(0))))
    mask = session.start(box)  # type: ignore[arg-type]
    first = dice(mask, truth)
    assert first > 0.8
    missed = truth & ~mask
    if missed.any():
        p = tuple(float(v) for v in np.argwhere(missed)[0])
        assert dice(session.click(p, True), truth) >= first - 0.02  # type: ignore[arg-type]
