"""Grouping readers' boxes and points into consensus objects."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.quality.clusters import cluster_boxes, cluster_points


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="at least two"):
        cluster_boxes([[[0, 0, 1, 1]]])
    with pytest.raises(ValueError, match="iou_threshold"):
        cluster_boxes([[], []], iou_threshold=0)
    with pytest.raises(ValueError, match="same number of coordinates"):
        cluster_boxes([[[0, 0, 1, 1]], [[0, 0, 0, 1, 1, 1]]])
    with pytest.raises(ValueError, match="radius"):
        cluster_points([[], []], radius=0)


def test_no_boxes_no_clusters() -> None:
    assert cluster_boxes([[], [], []]) == []


def test_one_reader_never_contributes_twice_to_an_object() -> None:
    a = [[0, 0, 10, 10], [1, 1, 10, 10]]  # two overlapping boxes of one reader
    b = [[0, 0, 10, 10]]
    clusters = cluster_boxes([a, b])
    assert sorted(len(c.members) for c in clusters) == [1, 2]
    for c in clusters:
        readers = [r for r, _ in c.members]
        assert len(readers) == len(set(readers))


def test_two_readers_split_is_a_tie() -> None:
    clusters = cluster_boxes([[[0, 0, 5, 5]], []])
    assert len(clusters) == 1 and clusters[0].tied and not clusters[0].chosen


def test_three_dimensional_boxes_and_weights() -> None:
    a = [[0, 0, 0, 4, 4, 4]]
    b = [[0, 0, 0, 4, 4, 5]]
    c: list[list[float]] = []
    (cl,) = cluster_boxes([a, b, c], weights=[1, 1, 3])
    assert cl.share == pytest.approx(0.4) and not cl.chosen
    assert cl.mark.tolist() == [0, 0, 0, 4, 4, 4.5]


def test_points_within_radius() -> None:
    readers = [[[0, 0, 0], [50, 0, 0]], [[1, 0, 0]], [[0, 1, 0], [51, 0, 0]]]
    clusters = cluster_points(readers, radius=3.0)
    chosen = [c for c in clusters if c.chosen]
    assert len(chosen) == 2
    assert np.allclose(chosen[0].mark, [0, 0, 0])
    assert len(chosen[0].members) == 3 and len(chosen[1].members) == 2
