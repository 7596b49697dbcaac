"""Click corrections on logit maps and the propagation stop rule (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.engines.interactive.cache import EmbeddingCache, input_key
from medlabel.engines.interactive.corrections import apply_clicks, mask_logits
from medlabel.engines.interactive.preprocess import Frame, model_input, to_grey8
from medlabel.engines.interactive.stopping import StopRule, should_stop
from medlabel.imaging.windowing import Window


def _square_logits(n: int = 40) -> np.ndarray:
    m = np.zeros((n, n), bool)
    m[10:30, 10:30] = True
    return mask_logits(m)


def test_apply_clicks_rejects_bad_input():
    with pytest.raises(ValueError, match="2D or 3D"):
        apply_clicks(np.zeros(5, np.float32), [((1,), True)])
    with pytest.raises(ValueError, match="outside"):
        apply_clicks(_square_logits(), [((50, 5), True)])
    with pytest.raises(ValueError, match="spacing"):
        apply_clicks(_square_logits(), [((5, 5), True)], spacing=(1.0, 1.0, 1.0))


def test_no_clicks_changes_nothing():
    lg = _square_logits()
    assert np.array_equal(apply_clicks(lg, []), lg)


def test_positive_click_adds_the_clicked_region_only_locally():
    lg = _square_logits()
    out = apply_clicks(lg, [((20, 33), True)])
    before, after = lg > 0, out > 0
    assert after[20, 33] and not before[20, 33]
    assert (after & ~before).sum() > 1  # the neighbourhood follows
    assert np.array_equal(after[:, :5], before[:, :5])  # far away: unchanged
    assert (before & ~after).sum() == 0  # a positive click removes nothing


def test_negative_click_removes_and_order_matters():
    lg = _square_logits()
    out = apply_clicks(lg, [((20, 28), False)])
    assert not out[20, 28] > 0 and (out > 0).sum() < (lg > 0).sum()
    # a later positive click on the same pixel wins
    back = apply_clicks(lg, [((20, 28), False), ((20, 28), True)])
    assert back[20, 28] > 0


def test_clicks_respect_anisotropic_spacing_in_3d():
    m = np.zeros((10, 30, 30), bool)
    m[3:7, 10:20, 10:20] = True
    lg = mask_logits(m, (3.0, 1.0, 1.0))
    out = apply_clicks(lg, [((5, 15, 24), True)], spacing=(3.0, 1.0, 1.0))
    grown = (out > 0) & ~m
    assert grown[5, 15, 24]
    # a bump is round in mm: it reaches fewer planes than columns
    planes = np.flatnonzero(grown.any(axis=(1, 2)))
    cols = np.flatnonzero(grown.any(axis=(0, 1)))
    assert len(planes) < len(cols)


def test_mask_logits_of_empty_mask_is_all_outside():
    assert (mask_logits(np.zeros((4, 4), bool)) < 0).all()


def test_stop_rule():
    prev = np.zeros((20, 20), bool)
    prev[5:15, 5:15] = True
    assert should_stop(prev, prev, StopRule()) == (False, "continues")
    tiny = np.zeros_like(prev)
    tiny[5:7, 5:7] = True
    stop, reason = should_stop(tiny, prev, StopRule())
    assert stop and "shrank" in reason
    moved = np.roll(prev, 9, axis=1)
    stop, reason = should_stop(moved, prev, StopRule())
    assert stop and "moved away" in reason


def test_frame_keeps_physical_aspect_and_maps_boxes_inside():
    f = Frame.for_slice((50, 100), (2.0, 1.0))  # square in mm
    assert f.size == (256, 256)
    box = f.box_to_model((0, 0, 49, 99))
    assert box.tolist() == [0.0, 0.0, 255.0, 255.0]
    with pytest.raises(ValueError, match="positive"):
        Frame.for_slice((0, 10), (1.0, 1.0))


def test_grey_levels_per_modality():
    ct = np.array([[-1000, 40], [240, 3000]], np.int16)
    g = to_grey8(ct, "CT")
    assert g.shape == (2, 2, 3) and g[0, 0, 0] == 0 and g[1, 1, 0] == 255
    assert to_grey8(ct, "CT", Window(-600, 1500))[0, 0, 0] > 0  # lung window
    rgb = np.zeros((4, 5, 3), np.uint16)
    rgb[..., 0] = 1000
    assert to_grey8(rgb, "OT").dtype == np.uint8
    with pytest.raises(ValueError, match="slice"):
        to_grey8(np.zeros((2, 2, 2, 2)), "MR")


def test_model_input_is_padded_and_scaled():
    grey = np.zeros((64, 32, 3), np.uint8)
    grey[:, 16:] = 200
    f = Frame.for_slice((64, 32), (1.0, 1.0))
    x = model_input(grey, f)
    assert x.shape == (3, 256, 256) and x.dtype == np.float32
    assert x.max() == pytest.approx(1.0) and x.min() == 0.0
    assert not x[:, :, 128:].any()  # padding on the right


def test_embedding_cache_is_bounded_and_keyed_by_content():
    c = EmbeddingCache(max_bytes=2 * 800)
    for i in range(3):
        c.put(str(i), np.zeros(100, np.float64))
    assert len(c) == 2 and c.get("0") is None and c.nbytes == 1600
    a = np.ones((3, 8, 8), np.float32)
    assert input_key(a) != input_key(a.reshape(3, 4, 16))
